package benchrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"

	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/benchproc"
	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/benchreport"
	"github.com/natsmesh/natsmesh/wire"
)

// The scaling scenarios (natsmesh bench --scaling): the sidecar HTTP pair
// (scenario sidecar-http, closed loops) as one thing grows, so the report
// shows how the cost of a call grows with it.
const (
	// ScaleServices (a prefix: scale-services-N) registers N services of
	// two instances each on the broker, the called one among them: N-1
	// services whose instances each subscribe what an agent does (its
	// queue group, its reply inbox, the nine discovery subjects) on a
	// NATS connection of its own, besides the echo service's agent.
	ScaleServices = "scale-services-"
	// ScaleBody (a prefix: scale-body-1KiB) calls with request and
	// response bodies of the size named.
	ScaleBody = "scale-body-"
	// ScaleConns runs the closed loops of Options.ScaleConns callers.
	ScaleConns = "scale-conns"
	// ScaleRouteSame and ScaleRouteHop run on a cluster of three broker
	// processes (routes on loopback): both agents on the first broker,
	// and the echo agent on the second, so that every message crosses a
	// route. Measured side by side, their loads interleaved: the
	// difference is a route hop's cost.
	ScaleRouteSame = "scale-route-same"
	ScaleRouteHop  = "scale-route-hop"
)

// The sizes the scaling scenarios cover.
var (
	scaleServices = []int{1, 100, 1000}
	scaleBodies   = []int{1 << 10, 64 << 10, 1 << 20}
	scaleConns    = []int{1, 32, 256}
)

// ScalingScenarios lists the scaling scenarios, in the order they run.
var ScalingScenarios = scalingScenarios()

func scalingScenarios() []string {
	var names []string
	for _, n := range scaleServices {
		names = append(names, ScaleServices+strconv.Itoa(n))
	}
	for _, n := range scaleBodies {
		names = append(names, ScaleBody+sizeName(n))
	}
	return append(names, ScaleConns, ScaleRouteSame, ScaleRouteHop)
}

// sizeName is 1KiB, 64KiB or 1MiB.
func sizeName(n int) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return strconv.Itoa(n>>20) + "MiB"
	}
	return strconv.Itoa(n>>10) + "KiB"
}

// scaling returns the dimension and value that scenario name scales, and
// false for a scenario that is not a scaling one.
func scaling(name string) (dimension string, value int, ok bool) {
	switch {
	case strings.HasPrefix(name, ScaleServices):
		n, err := strconv.Atoi(strings.TrimPrefix(name, ScaleServices))
		return "services", n, err == nil && n > 0
	case strings.HasPrefix(name, ScaleBody):
		for _, n := range scaleBodies {
			if name == ScaleBody+sizeName(n) {
				return "body", n, true
			}
		}
	case name == ScaleConns:
		return "conns", 0, true
	case name == ScaleRouteSame:
		return "route", 0, true
	case name == ScaleRouteHop:
		return "route", 1, true
	}
	return "", 0, false
}

// scaleLoads are the loads of scaling scenario name: closed loops of one
// caller, and of each of scaleConns for ScaleConns.
func scaleLoads(name string) []load {
	conns := []int{1}
	if name == ScaleConns {
		conns = scaleConns
	}
	var ls []load
	for _, c := range conns {
		ls = append(ls, load{name: "closed " + strconv.Itoa(c), conns: c})
	}
	return ls
}

// startScaling starts scaling scenario name: its broker (or cluster), the
// services it registers and the sidecar pair.
func (e *env) startScaling(ctx context.Context, s *setup, name string) error {
	dimension, value, _ := scaling(name)
	s.scale = &benchreport.Scale{Dimension: dimension}
	switch dimension {
	case "services":
		s.scale.Value = strconv.Itoa(value)
	case "body":
		s.scale.Value = sizeName(value)
	case "route":
		s.scale.Value = "same broker"
		if value == 1 {
			s.scale.Value = "route hop"
		}
	}
	if dimension == "route" {
		urls, monitor, err := e.startCluster(ctx, s)
		if err != nil {
			return err
		}
		s.monitor = monitor
		echoURL := urls[0]
		if value == 1 {
			echoURL = urls[1]
		}
		return e.startSidecars(ctx, s, name, echoURL, urls[0])
	}
	monitor, err := benchproc.FreeAddr()
	if err != nil {
		return err
	}
	natsURL, err := e.startBrokerAs(ctx, s, "broker", "--monitor", monitor, "--no-jetstream")
	if err != nil {
		return err
	}
	s.monitor = monitor
	if dimension == "services" && value > 1 {
		closeAll, err := register(ctx, natsURL, value-1, 2)
		s.cleanup = append(s.cleanup, closeAll)
		if err != nil {
			return s.components[len(s.components)-1].Failed(err) // with the broker's log
		}
	}
	if dimension == "body" {
		// The echo's calls carry this body: a copy of the environment
		// whose body the setup's target sends.
		sized := *e
		sized.body = make([]byte, value)
		copy(sized.body, e.body)
		for i := len(e.body); i < value; i++ {
			sized.body[i] = byte('a' + i%26)
		}
		return sized.startSidecars(ctx, s, name, natsURL, natsURL)
	}
	return e.startSidecars(ctx, s, name, natsURL, natsURL)
}

// register subscribes, for each of services services (svc0001, ...) of
// instances instances, what a natsmesh agent of it subscribes, each
// instance on a connection of its own; the returned function closes them.
func register(ctx context.Context, natsURL string, services, instances int) (func(), error) {
	var (
		mu    sync.Mutex
		conns []*nats.Conn
		errs  []error
		wg    sync.WaitGroup
	)
	closeAll := func() {
		for _, nc := range conns {
			nc.Close()
		}
	}
	work := make(chan string)
	// A few at a time: a thousand connections made at once time out on a
	// busy machine.
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for svc := range work {
				// A connection the broker closed while the machine was busy
				// (a broken pipe) is made again, twice at most.
				nc, err := subscribeInstance(natsURL, svc)
				for try := 0; err != nil && try < 2 && ctx.Err() == nil; try++ {
					if nc != nil {
						nc.Close()
					}
					nc, err = subscribeInstance(natsURL, svc)
				}
				mu.Lock()
				if nc != nil {
					conns = append(conns, nc)
				}
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for i := 1; i <= services; i++ {
		for range instances {
			select {
			case work <- fmt.Sprintf("svc%04d", i):
			case <-ctx.Done():
				break feed
			}
		}
	}
	close(work)
	wg.Wait()
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		return closeAll, fmt.Errorf("benchrun: registering services: %w", err)
	}
	return closeAll, nil
}

// subscribeInstance connects as one instance of service svc and subscribes
// what its agent would: the service's queue subjects, its reply inbox and
// the discovery subjects, without handlers (no call reaches them).
func subscribeInstance(natsURL, svc string) (*nats.Conn, error) {
	nc, err := nats.Connect(natsURL, nats.Name("natsmesh-bench:"+svc), nats.CustomInboxPrefix(wire.InboxPrefix(svc)),
		nats.Timeout(10*time.Second), nats.RetryOnFailedConnect(false))
	if err != nil {
		return nil, err
	}
	id := nuid.Next()
	subjects, queues := wire.ServiceSubjects(svc, "")
	for i, subj := range subjects {
		if _, err := nc.QueueSubscribeSync(subj, queues[i]); err != nil {
			return nc, err
		}
	}
	plain := []string{wire.InboxPrefix(svc) + ".*." + id + ".*"}
	for _, verb := range []micro.Verb{micro.PingVerb, micro.InfoVerb, micro.StatsVerb} {
		for _, kind := range [][2]string{{"", ""}, {svc, ""}, {svc, id}} {
			subj, err := micro.ControlSubject(verb, kind[0], kind[1])
			if err != nil {
				return nc, err
			}
			plain = append(plain, subj)
		}
	}
	for _, subj := range plain {
		if _, err := nc.SubscribeSync(subj); err != nil {
			return nc, err
		}
	}
	return nc, nc.FlushTimeout(10 * time.Second)
}

// startCluster starts three broker processes routed to one another on
// loopback, without JetStream (the agents run the built-in policy), and
// waits until each has its two routes. It returns their client URLs and
// the first broker's monitor address.
func (e *env) startCluster(ctx context.Context, s *setup) (urls []string, monitor string, err error) {
	var routes, monitors []string
	for range 3 {
		addr, err := benchproc.FreeAddr()
		if err != nil {
			return nil, "", err
		}
		routes = append(routes, "nats://"+addr)
		m, err := benchproc.FreeAddr()
		if err != nil {
			return nil, "", err
		}
		monitors = append(monitors, m)
	}
	for i, name := range []string{"broker", "broker-b", "broker-c"} {
		u, err := e.startBrokerAs(ctx, s, name, "--monitor", monitors[i], "--no-jetstream", "--name", name,
			"--cluster", strings.TrimPrefix(routes[i], "nats://"), "--cluster-name", "bench", "--routes", strings.Join(routes, ","))
		if err != nil {
			return nil, "", err
		}
		urls = append(urls, u)
	}
	for i, m := range monitors {
		p := s.components[len(s.components)-3+i]
		if err := p.WaitReady(ctx, 15*time.Second, routesReady(m, 2)); err != nil {
			return nil, "", err
		}
	}
	return urls, monitors[0], nil
}

// routesReady is ready once the broker whose monitor is at addr has want
// routes.
func routesReady(addr string, want int) func() error {
	return func() error {
		var rz struct {
			NumRoutes int `json:"num_routes"`
		}
		if err := getJSON("http://"+addr+"/routez", &rz); err != nil {
			return err
		}
		if rz.NumRoutes < want {
			return fmt.Errorf("%d routes of %d", rz.NumRoutes, want)
		}
		return nil
	}
}

// brokerState reads a broker's subscriptions and resident memory from its
// monitor's /varz.
func brokerState(addr string) (subs int, rssMB float64, err error) {
	var vz struct {
		Subscriptions int   `json:"subscriptions"`
		Mem           int64 `json:"mem"`
	}
	if err := getJSON("http://"+addr+"/varz", &vz); err != nil {
		return 0, 0, err
	}
	return vz.Subscriptions, float64(vz.Mem) / (1 << 20), nil
}

func getJSON(url string, v any) error {
	resp, err := benchproc.AdminClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
