package benchrun

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/benchproc"
	"github.com/natsmesh/natsmesh/wire"
)

// TestIdempotentScenariosSkipConfirm watches the broker of the sidecar and
// in-process HTTP scenarios, plain and -idempotent, started as the bench
// starts them (natsmesh agent --policy FILE; bench-echo --policy FILE and
// the client agent's live.WatchFile), and counts the NATS messages of a
// call: a plain POST is confirmed (request with Mesh-Confirm, accept,
// start, answer: four), an -idempotent one is not (request, answer: two).
// Were the mesh file not to reach the caller's pipeline, the -idempotent
// rows would measure the confirmed path and this test would fail.
func TestIdempotentScenariosSkipConfirm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds natsmesh and starts processes")
	}
	exe := buildNatsmesh(t)
	// The brokers on one core (--broker-procs): the test also sees that
	// the option reaches them.
	opts := Options{Exe: exe, Size: 1024, BrokerProcs: 1}
	if err := opts.defaults(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e := &env{opts: &opts, dir: dir, body: bytes.Repeat([]byte("x"), opts.Size)}
	var err error
	if e.echoHTTP, err = benchproc.FreeAddr(); err != nil {
		t.Fatal(err)
	}
	if e.echoGRPC, err = benchproc.FreeAddr(); err != nil {
		t.Fatal(err)
	}
	echo, err := benchproc.Start(dir, "echo", exe, "bench-echo", "--echo-http", e.echoHTTP, "--echo-grpc", e.echoGRPC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Stop(5 * time.Second) })
	if err := echo.WaitReady(t.Context(), 10*time.Second, benchproc.LogReady(echo, "ready")); err != nil {
		t.Fatal(err)
	}

	const calls = 50
	for _, tc := range []struct {
		scenario string
		confirm  bool
	}{
		{SidecarHTTP, true},
		{SidecarHTTPIdempotent, false},
		{InprocHTTP, true},
		{InprocHTTPIdempotent, false},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			s := &setup{name: tc.scenario}
			defer s.close()
			natsURL, err := e.startBrokerAs(t.Context(), s, "broker", "--monitor", "off", "--store", filepath.Join(dir, tc.scenario+"-store"))
			if err != nil {
				t.Fatal(err)
			}
			cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", s.components[0].PID()))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(cmdline, []byte("\x00--procs\x001\x00")) {
				t.Errorf("BrokerProcs 1: the broker runs as %q", bytes.ReplaceAll(cmdline, []byte{0}, []byte(" ")))
			}
			if strings.HasPrefix(tc.scenario, "sidecar-") {
				err = e.startSidecars(t.Context(), s, tc.scenario, natsURL, natsURL)
			} else {
				err = e.startInproc(t.Context(), s, tc.scenario, natsURL)
			}
			if err != nil {
				t.Fatal(err)
			}
			// The path is all there (interest, census) before the count.
			if err := firstCall(t.Context(), s); err != nil {
				t.Fatalf("no first call: %v", err)
			}

			tap, err := nats.Connect(natsURL, nats.Name("benchrun-test:tap"))
			if err != nil {
				t.Fatal(err)
			}
			defer tap.Close()
			sub, err := tap.SubscribeSync(">")
			if err != nil {
				t.Fatal(err)
			}
			if err := sub.SetPendingLimits(-1, -1); err != nil {
				t.Fatal(err)
			}
			if err := tap.Flush(); err != nil {
				t.Fatal(err)
			}
			call, release, err := s.target(1)
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			for i := range calls {
				if err := call(t.Context()); err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
			}
			// Every message of a call that has ended was queued to the
			// tap before the answer reached the caller; the PONG comes
			// after them, so once Flush returns they are all pending.
			if err := tap.Flush(); err != nil {
				t.Fatal(err)
			}
			pending, _, err := sub.Pending()
			if err != nil {
				t.Fatal(err)
			}
			var meshMsgs, requests, confirmed int
			for range pending {
				m, err := sub.NextMsg(time.Second)
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case strings.HasPrefix(m.Subject, wire.Prefix+".") || strings.HasPrefix(m.Subject, wire.InstancePrefix+"."):
					meshMsgs++
					requests++
					if m.Header.Get(wire.HeaderConfirm) != "" {
						confirmed++
					}
				case strings.HasPrefix(m.Subject, "_INBOX_mesh."):
					meshMsgs++
				}
			}
			perCall := float64(meshMsgs) / calls
			t.Logf("%s: %d calls, %d requests (%d with %s), %d mesh messages: %.2f a call",
				tc.scenario, calls, requests, confirmed, wire.HeaderConfirm, meshMsgs, perCall)
			if requests < calls {
				t.Fatalf("saw %d requests of %d calls: the tap missed messages", requests, calls)
			}
			want := 2.0
			if tc.confirm {
				want = 4
			}
			// A resend (a call not taken within the take bound on a busy
			// machine) adds a little; the confirm exchange doubles it.
			if perCall < want || perCall > want+0.5 {
				t.Errorf("%.2f NATS messages a call, want %v", perCall, want)
			}
			if tc.confirm && confirmed < calls || !tc.confirm && confirmed != 0 {
				t.Errorf("%d of %d requests carry %s, want confirmed %v", confirmed, requests, wire.HeaderConfirm, tc.confirm)
			}
		})
	}
}
