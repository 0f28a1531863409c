package streamtest

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// recorder is a reporter that keeps what check says.
type recorder struct{ errs []string }

func (r *recorder) Helper()           {}
func (r *recorder) Error(args ...any) { r.errs = append(r.errs, fmt.Sprint(args...)) }
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Logf(string, ...any) {}

// TestCheck: the fault suite's check finds each breach of its rules in
// outcomes and ledgers made up for it, and nothing in a clean run; a
// rule with a named defect is collected for the skip, not failed. The
// long cases run only in make chaos; this keeps their judge honest in
// make test.
func TestCheck(t *testing.T) {
	t0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	deadline := t0.Add(3 * time.Second)
	ok := func(id, method string) outcome {
		return outcome{id: id, method: method, sent: t0, done: t0.Add(20 * time.Millisecond), status: 200}
	}
	failed := func(id, method string, took time.Duration, status int, meshErr string) outcome {
		return outcome{id: id, method: method, sent: t0, done: t0.Add(took), status: status, meshError: meshErr}
	}
	hung := outcome{id: "h", method: http.MethodGet, sent: t0, done: t0.Add(13 * time.Second),
		clientErr: &url.Error{Op: "Get", URL: "http://orders/x", Err: context.DeadlineExceeded}}
	type ran struct {
		id, method string
		at         time.Time
	}
	for _, tc := range []struct {
		name   string
		outs   []outcome
		ledger []ran
		v      verdict
		want   string // in an error; empty: none
		known  bool   // a named defect collected
	}{
		{"clean", []outcome{ok("a", "POST"), ok("b", "GET")}, []ran{{"a", "POST", t0}, {"b", "GET", t0}}, verdict{}, "", false},
		{"POST twice", []outcome{ok("a", "POST")}, []ran{{"a", "POST", t0}, {"a", "POST", t0}}, verdict{}, "ran 2 times", false},
		{"GET twice is allowed", []outcome{ok("b", "GET")}, []ran{{"b", "GET", t0}, {"b", "GET", t0}}, verdict{}, "", false},
		{"late", []outcome{ok("a", "POST")}, []ran{{"a", "POST", deadline.Add(lateBy + 10*time.Millisecond)}}, verdict{}, "after its client's deadline", false},
		{"late at a frozen service", []outcome{ok("a", "POST")}, []ran{{"a", "POST", deadline.Add(time.Second)}}, verdict{lateAtService: "frozen"}, "", false},
		{"on time within the skew", []outcome{ok("a", "POST")}, []ran{{"a", "POST", deadline.Add(lateBy - 10*time.Millisecond)}}, verdict{}, "", false},
		{"hang", []outcome{hung}, nil, verdict{failedGETs: -1}, "got no answer", false},
		{"hang is no connection error", []outcome{hung}, nil, verdict{failedGETs: -1, connErrors: true}, "got no answer", false},
		{"not explicit", []outcome{failed("a", "POST", time.Second, 502, "")}, nil, verdict{failedPOSTs: -1}, "without Mesh-Error", false},
		{"200 that never ran", []outcome{ok("a", "POST")}, nil, verdict{}, "never ran", false},
		{"failed GET", []outcome{failed("b", "GET", time.Second, 503, "connection-lost")}, nil, verdict{failedPOSTs: -1}, "GETs (idempotent) failed", false},
		{"failed POST allowed", []outcome{failed("a", "POST", time.Second, 503, "connection-lost")}, nil, verdict{failedPOSTs: -1}, "", false},
		{"failed share", []outcome{failed("a", "POST", time.Second, 503, "connection-lost"), ok("b", "GET")}, []ran{{"b", "GET", t0}},
			verdict{failedPOSTs: -1, failedShare: 0.01}, "requests failed, want at most", false},
		{"error within", []outcome{failed("a", "POST", 3*time.Second, 504, "timeout")}, nil, verdict{failedPOSTs: -1, errorWithin: liveness}, "want an answer within", false},
		{"recover", []outcome{{id: "a", method: "POST", sent: t0.Add(2 * time.Second), done: t0.Add(3 * time.Second), status: 503, meshError: "broker-unavailable"}},
			nil, verdict{failedPOSTs: -1, recoverBy: time.Second}, "want 200 from", false},
		{"a named defect", []outcome{failed("b", "GET", time.Second, 503, "connection-lost")}, nil,
			verdict{failedPOSTs: -1, defects: map[string]string{"failed-get": "defect"}}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			svc := &ledgerService{proc: &proc{name: "orders-0"}, file: filepath.Join(dir, "orders-0.ledger")}
			var lines strings.Builder
			for _, r := range tc.ledger {
				fmt.Fprintf(&lines, "%s %s %d %d\n", r.id, r.method, r.at.UnixMicro(), deadline.UnixMilli())
			}
			if err := os.WriteFile(svc.file, []byte(lines.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			rec := &recorder{}
			f := check(rec, tc.outs, t0, tc.v, svc)
			got := strings.Join(rec.errs, "\n")
			switch {
			case tc.want == "" && got != "":
				t.Errorf("check failed a case it should pass:\n%s", got)
			case tc.want != "" && !strings.Contains(got, tc.want):
				t.Errorf("check said %q, want an error with %q", got, tc.want)
			}
			if (len(f.known) > 0) != tc.known {
				t.Errorf("known defects %q, want some: %v", f.known, tc.known)
			}
		})
	}
}
