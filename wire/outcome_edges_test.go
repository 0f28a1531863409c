package wire

import (
	"testing"

	"github.com/nats-io/nats.go"
)

// TestGRPCStatusBounded: a gRPC status past 32 bits' signed range reads as
// the largest such code; an empty one as a micro error's or OK.
func TestGRPCStatusBounded(t *testing.T) {
	for v, want := range map[string]int{
		"4294967295": 1<<31 - 1,
		"2147483648": 1<<31 - 1,
		"2147483647": 1<<31 - 1,
		"14":         14,
		"":           0,
	} {
		if got := AnswerOutcome(ProtoGRPC, nats.Header{HeaderGRPCStatus: {v}}); got.Code != want || got.Proto != ProtoGRPC {
			t.Errorf("grpc status %q: %+v, want code %d", v, got, want)
		}
	}
}

// TestHTTPStatusRange: a status of 100 to 999 is the answer's; one outside
// makes no HTTP answer and reads as a NATS-native reply's (200).
func TestHTTPStatusRange(t *testing.T) {
	for v, want := range map[string]int{"100": 100, "999": 999, "99": 200, "1000": 200, "": 200, "abc": 200} {
		if got := AnswerOutcome(ProtoHTTP, nats.Header{HeaderStatus: {v}}); got.Code != want {
			t.Errorf("status %q: %+v, want code %d", v, got, want)
		}
	}
}

// TestMicroHTTPStatusRange: a micro error's code of 400 to 599 is its
// status; any other is 500.
func TestMicroHTTPStatusRange(t *testing.T) {
	for code, want := range map[string]int{"400": 400, "599": 599, "429": 429, "399": 500, "600": 500, "": 500, "x": 500} {
		if got := MicroHTTPStatus(code); got != want {
			t.Errorf("MicroHTTPStatus(%q) = %d, want %d", code, got, want)
		}
	}
}
