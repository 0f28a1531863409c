package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// securedEdge starts an edge that authenticates as "bridge" with its NKey
// on b, routing /echo to the NATS subject mesh.echo (which the hand-written
// users may publish to), with cache as its policy cache.
func securedEdge(t *testing.T, sec *meshtest.Secured, b *broker.Broker, cache string, policy string) (*Edge, error) {
	t.Helper()
	e, err := NewEdge(EdgeConfig{
		Gateway:     GatewayConfig{Routes: []Route{{PathPrefix: "/echo", Subject: "mesh.echo"}}, Logger: discardLogger()},
		Connect:     ConnectConfig{URL: b.ClientURL(), NKey: sec.Seed("bridge"), Timeout: 5 * time.Second, Logger: discardLogger()},
		Listen:      "127.0.0.1:0",
		Admin:       "127.0.0.1:0",
		Policy:      policy,
		PolicyCache: cache,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Shutdown(ctx)
	})
	return e, e.Start(t.Context())
}

// echoResponder answers mesh.echo as the admin.
func echoResponder(t *testing.T, sec *meshtest.Secured, b *broker.Broker) *nats.Conn {
	t.Helper()
	o, err := nats.NkeyOptionFromSeed(sec.Seed("admin"))
	if err != nil {
		t.Fatal(err)
	}
	nc := meshtest.Conn(t, b, o)
	if _, err := nc.Subscribe("mesh.echo", func(m *nats.Msg) { m.Respond([]byte("echo")) }); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	return nc
}

func getEcho(t *testing.T, e *Edge) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + e.Addr().String() + "/echo")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get(wire.HeaderError)
}

// TestEdgeFailClosed: a gateway that authenticates with an NKey, watching
// an empty bucket, answers every request 503 no-mesh-file and /readyz 503
// "no mesh file yet"; once a mesh file is applied it serves, and keeps it
// on disk; a gateway started later on a broker without JetStream serves
// with the kept file. --policy off is refused for it.
func TestEdgeFailClosed(t *testing.T) {
	sec := meshtest.SecureConfig(t, true, "admin", "bridge")
	b := sec.Broker(t)
	admin := echoResponder(t, sec, b)
	cache := filepath.Join(t.TempDir(), "bridge", "mesh.json")
	e, err := securedEdge(t, sec, b, cache, "")
	if err != nil {
		t.Fatal(err)
	}
	if code, kind := getEcho(t, e); code != http.StatusServiceUnavailable || kind != string(wire.KindNoMeshFile) {
		t.Errorf("without a mesh file: %d %q, want 503 %s", code, kind, wire.KindNoMeshFile)
	}
	if code, body := get(t, "http://"+e.AdminAddr().String()+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no mesh file yet") {
		t.Errorf("/readyz without a mesh file: %d %q", code, body)
	}

	js, _ := jetstream.New(admin)
	store, err := live.OpenStore(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	f, err := policies.Parse("mesh.yaml", []byte("version: 1\nservices:\n  orders: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Apply(t.Context(), f); err != nil {
		t.Fatal(err)
	}
	meshtest.CheckFor(t, time.Second, 5*time.Millisecond, func() error {
		if code, kind := getEcho(t, e); code != http.StatusOK {
			return fmt.Errorf("with a mesh file: %d %q", code, kind)
		}
		if code, body := get(t, "http://"+e.AdminAddr().String()+"/readyz"); code != http.StatusOK {
			return fmt.Errorf("/readyz with a mesh file: %d %q", code, body)
		}
		return nil
	})

	// On a broker without JetStream, with the kept file (written once
	// the first gateway has the file: it may come just after its first
	// answer).
	meshtest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		_, err := os.Stat(cache)
		return err
	})
	b2 := sec.Broker(t, func(c *broker.Config) { c.NoJetStream = true })
	echoResponder(t, sec, b2)
	e2, err := securedEdge(t, sec, b2, cache, "")
	if err != nil {
		t.Fatal(err)
	}
	if code, kind := getEcho(t, e2); code != http.StatusOK {
		t.Errorf("with the kept mesh file: %d %q", code, kind)
	}
	e3, err := securedEdge(t, sec, b2, filepath.Join(t.TempDir(), "none.json"), "")
	if err != nil {
		t.Fatal(err)
	}
	if code, kind := getEcho(t, e3); code != http.StatusServiceUnavailable || kind != string(wire.KindNoMeshFile) {
		t.Errorf("without a kept mesh file: %d %q, want 503 %s", code, kind, wire.KindNoMeshFile)
	}

	if _, err := securedEdge(t, sec, b, "", live.Off); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "authenticates") {
		t.Errorf("--policy off with an NKey: %v, want ErrInvalidConfig", err)
	}
}

// TestGatewayBuiltinPolicyOptIn: a gateway built by a program with no
// Policies on a connection that authenticates is a configuration error,
// unless GatewayConfig.BuiltinPolicy opts in, which NewGateway warns
// about; on the open broker the built-in policy needs no opt-in.
func TestGatewayBuiltinPolicyOptIn(t *testing.T) {
	sec := meshtest.SecureConfig(t, false, "admin", "bridge")
	secured := sec.Broker(t)
	open := meshtest.Broker(t)
	f, err := policies.Parse("mesh.yaml", []byte("version: 1\nservices:\n  orders: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		b        *broker.Broker
		nkey     bool
		policies *live.Source
		builtin  bool
		wantErr  string // "" for none
		wantWarn string // "" for no warning
	}{
		{"authenticates, no policies", secured, true, nil, false, "GatewayConfig.BuiltinPolicy", ""},
		{"authenticates, built-in policy opted in", secured, true, nil, true, "", "only the broker's permissions decide"},
		{"authenticates, a mesh file", secured, true, live.Static(f), false, "", ""},
		{"open broker, no policies", open, false, nil, false, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := []nats.Option{nats.CustomInboxPrefix(wire.InboxPrefix("bridge"))}
			if tc.nkey {
				o, err := nats.NkeyOptionFromSeed(sec.Seed("bridge"))
				if err != nil {
					t.Fatal(err)
				}
				opts = append(opts, o)
			}
			nc := meshtest.Conn(t, tc.b, opts...)
			var logs bytes.Buffer
			g, err := NewGateway(GatewayConfig{Conn: nc, Name: "bridge", Routes: []Route{{PathPrefix: "/echo", Subject: "mesh.echo"}},
				Policies: tc.policies, BuiltinPolicy: tc.builtin, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if tc.wantErr != "" {
				if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("NewGateway = %v, want ErrInvalidConfig naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer g.Shutdown(t.Context())
			warned := strings.Contains(logs.String(), "level=WARN")
			if tc.wantWarn == "" && warned || tc.wantWarn != "" && !strings.Contains(logs.String(), tc.wantWarn) {
				t.Errorf("want warning %q; logs: %q", tc.wantWarn, logs.String())
			}
		})
	}
}
