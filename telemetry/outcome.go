package telemetry

import (
	"strconv"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/natsmesh/natsmesh/wire"
)

// kinds are the mesh error kinds a metric label may carry; any other kind
// (a reply may carry whatever a NATS client wrote) counts as "other", so
// the label's values stay bounded.
var kinds = []wire.Kind{
	wire.KindNoResponders, wire.KindTimeout, wire.KindCircuitOpen, wire.KindOverloaded,
	wire.KindRateLimited, wire.KindForbidden, wire.KindTooLarge, wire.KindHeadersTooLarge,
	wire.KindBadRequest, wire.KindNoRoute, wire.KindUpstream, wire.KindUpstreamRefused,
	wire.KindBrokerUnavailable, wire.KindInternal, wire.KindNoMeshFile, wire.KindConnectionLost, wire.KindEgressDenied, "other",
}

// kindIndex is 1 + the index of k in kinds; 0 is no mesh error.
func kindIndex(k wire.Kind) int {
	if k == "" {
		return 0
	}
	for i, kk := range kinds[:len(kinds)-1] {
		if k == kk {
			return i + 1
		}
	}
	return len(kinds)
}

// kindLabel is the mesh_error label of a kind index.
func kindLabel(i int) string {
	if i == 0 {
		return ""
	}
	return string(kinds[i-1])
}

// Status classes: HTTP's 1xx to 5xx, "other" for a status outside them,
// then gRPC's codes by name.
const (
	httpOther  = 5
	grpcBase   = 6
	grpcCodes  = 17
	grpcOther  = grpcBase + grpcCodes
	numStatus  = grpcOther + 1
	numKinds   = 19 // len(kinds) + 1
	numOutcome = numStatus * numKinds
)

var statusLabels = func() [numStatus]string {
	var l [numStatus]string
	copy(l[:], []string{"1xx", "2xx", "3xx", "4xx", "5xx", "other"})
	for c := range grpcCodes {
		l[grpcBase+c] = codes.Code(c).String()
	}
	l[grpcOther] = "other"
	return l
}()

// outcome is how a call ended, as metrics and spans tell it.
type outcome struct {
	status int  // index into statusLabels
	kind   int  // kindIndex; 0 for the service's own answer
	err    bool // counts as an error: a mesh error, or the service failed
	code   int  // the HTTP status or gRPC code
}

func (o outcome) id() int { return o.status*numKinds + o.kind }

func httpClass(status int) int {
	if status < 100 || status > 599 {
		return httpOther
	}
	return status/100 - 1
}

func grpcClass(c codes.Code) int {
	if c >= grpcCodes {
		return grpcOther
	}
	return grpcBase + int(c)
}

// classify is how metrics and spans tell w, the outcome of a call as its
// reply or error made it (pipeline.OutcomeOf, or what Reply.OnEnd tells of
// a stream), by wire's one rule of whether a service failed, in the
// metrics' variant (wire.Outcome's CountsAsError): a mesh error counts as
// an error, whatever its status; a service's answer does when it is a
// server failure (5xx, or a gRPC code gRPC maps to one).
func classify(w wire.Outcome) outcome {
	o := outcome{code: w.Code, err: w.CountsAsError()}
	if w.Err != nil {
		o.kind = kindIndex(w.Err.Kind)
	}
	if w.Proto == wire.ProtoGRPC {
		o.status = grpcClass(codes.Code(w.Code))
	} else {
		o.status = httpClass(w.Code)
	}
	return o
}

// Latency buckets: the same bounds for the Prometheus histograms (in
// seconds) and the snapshot's (in milliseconds), from half a millisecond,
// the cost of a hop on one machine, to ten seconds.
var (
	boundsMS  = []float64{0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}
	boundsS   = func() []float64 { return scaled(boundsMS, 1e-3) }()
	boundsDur = func() []time.Duration {
		d := make([]time.Duration, len(boundsMS))
		for i, b := range boundsMS {
			d[i] = time.Duration(b * float64(time.Millisecond))
		}
		return d
	}()
)

const numBuckets = 15 // len(boundsMS) + 1

func scaled(v []float64, f float64) []float64 {
	s := make([]float64, len(v))
	for i, x := range v {
		s[i] = x * f
	}
	return s
}

// bucket is the index of the latency bucket d falls in: the first bound at
// or above it, or the last bucket past every bound.
func bucket(d time.Duration) int {
	for i, b := range boundsDur {
		if d <= b {
			return i
		}
	}
	return len(boundsDur)
}

// Failed says how a call that ended with outcome w failed
// (pipeline.OutcomeOf, or what Reply.OnEnd tells of a stream), by the rule
// the error metrics count by (wire.Outcome's CountsAsError: a mesh error,
// a 5xx, a gRPC server-error code), for a log line or discovery's
// last_error; "" when it did not fail.
func Failed(w wire.Outcome) string {
	switch {
	case !w.CountsAsError():
		return ""
	case w.Err != nil:
		return w.Err.Error()
	case w.Proto == wire.ProtoGRPC:
		return "grpc status " + codes.Code(w.Code).String()
	}
	return "status " + strconv.Itoa(w.Code)
}
