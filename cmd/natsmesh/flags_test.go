package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natsmesh/natsmesh/internal/meshtest"
)

// TestEnvScopedPerCommand: a variable of one command (NATSMESH_BROKER_...,
// NATSMESH_BRIDGE_...) and the old unscoped names (NATSMESH_HTTP=off, which
// once turned off every agent's proxy) do not change the agent; the shared
// connection variable NATSMESH_NATS does, and the agent's own
// NATSMESH_AGENT_NATS wins over it. The unscoped name gets a warning
// rather than silence.
func TestEnvScopedPerCommand(t *testing.T) {
	b := meshtest.Broker(t)
	proxy, admin := freeAddr(t), freeAddr(t)
	p := startProcEnv(t, []string{
		"NATSMESH_HTTP=off", "NATSMESH_GRPC=off", "NATSMESH_TIMEOUT=garbage",
		"NATSMESH_BROKER_LISTEN=garbage", "NATSMESH_BROKER_MONITOR=off", "NATSMESH_BRIDGE_TIMEOUT=garbage",
		"NATSMESH_BRIDGE_ADMIN=" + admin,
		"NATSMESH_NATS=nats://127.0.0.1:1", // shared, and overridden by the agent's own:
		"NATSMESH_AGENT_NATS=" + b.ClientURL(),
		"NATSMESH_AGENT_SERVICE=web", "NATSMESH_AGENT_PROXY=" + proxy, "NATSMESH_AGENT_GRPC_PROXY=off",
		"NATSMESH_AGENT_ADMIN=" + admin,
	}, "agent")
	waitHTTP(t, p, "http://"+admin+"/readyz")
	resp, err := http.Get("http://" + proxy + "/")
	if err != nil {
		t.Fatalf("the agent's proxy is not listening: %v\n%s", err, p.stderr)
	}
	resp.Body.Close()
	if resp.Header.Get("Mesh-Error") == "" {
		t.Errorf("proxy answered %s without Mesh-Error", resp.Status)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.stderr)
	}
	for _, want := range []string{
		"natsmesh: warning: agent: NATSMESH_HTTP is not read (natsmesh reads per-command variables); use NATSMESH_AGENT_PROXY",
		"NATSMESH_GRPC is not read (natsmesh reads per-command variables); use NATSMESH_AGENT_GRPC_PROXY",
		"NATSMESH_TIMEOUT is not read (natsmesh reads per-command variables); use NATSMESH_AGENT_TIMEOUT",
	} {
		if !strings.Contains(p.stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, p.stderr)
		}
	}

	// The shared variable alone reaches the agent.
	cmd, _, stderr := natsmesh(t, []string{"NATSMESH_NATS=nats://127.0.0.1:1"},
		"agent", "--service", "web", "--proxy", "127.0.0.1:0", "--grpc-proxy", "off", "--admin", "off", "--connect-timeout", "300ms")
	if code := exitStatus(t, cmd.Run()); code != 2 || !strings.Contains(stderr.String(), "no NATS connection to nats://127.0.0.1:1") {
		t.Fatalf("NATSMESH_NATS not read: exit %d, %s", code, stderr)
	}
}

// TestDeprecatedNames: the old flag names still work, each with a one-line
// warning naming the new one; a nats-server file given to the broker's
// --config (what --config meant there before) is refused with a pointer to
// --nats-config.
func TestDeprecatedNames(t *testing.T) {
	b := meshtest.Broker(t)
	proxy, admin := freeAddr(t), freeAddr(t)
	p := startProc(t, "agent", "--service", "web", "--nats", b.ClientURL(), "--http", proxy, "--grpc", "off", "--admin", admin)
	waitHTTP(t, p, "http://"+admin+"/readyz")
	if resp, err := http.Get("http://" + proxy + "/"); err != nil {
		t.Fatalf("--http did not set the proxy: %v", err)
	} else {
		resp.Body.Close()
	}
	p.stop(t)
	for _, want := range []string{
		"natsmesh: warning: agent: --http is deprecated; use --proxy\n",
		"natsmesh: warning: agent: --grpc is deprecated; use --grpc-proxy\n",
	} {
		if !strings.Contains(p.stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, p.stderr)
		}
	}

	addr := freeAddr(t)
	br := startProc(t, "broker", "--listen", addr, "--http", "off", "--no-jetstream")
	waitNATS(t, br, addr)
	br.stop(t)
	if !strings.Contains(br.stderr.String(), "natsmesh: warning: broker: --http is deprecated; use --monitor") {
		t.Errorf("no deprecation warning:\n%s", br.stderr)
	}

	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte("port: 4222\nauthorization {\n  users = []\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, _, stderr := natsmesh(t, nil, "broker", "--config", conf)
	if code := exitStatus(t, cmd.Run()); code != 2 || !strings.Contains(stderr.String(), "a nats-server configuration file goes in --nats-config") {
		t.Fatalf("broker --config with a nats-server file: exit %d, %s", code, stderr)
	}
}

// TestBrokerConfigFile: --config is natsmesh's YAML settings on the broker
// too, with the command line winning.
func TestBrokerConfigFile(t *testing.T) {
	addr := freeAddr(t)
	conf := filepath.Join(t.TempDir(), "broker.yaml")
	if err := os.WriteFile(conf, []byte("listen: "+addr+"\nmonitor: \"off\"\nno-jetstream: true\nlame-duck: 10s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "broker", "--config", conf, "--lame-duck", "-1s")
	waitNATS(t, p, addr) // the file's address
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.stderr)
	}
}

// TestBrokerProcs: --procs sets the broker's cores (nats-server reports its
// GOMAXPROCS in /varz), it wins over the environment's GOMAXPROCS, and a
// negative count is refused before anything starts.
func TestBrokerProcs(t *testing.T) {
	gomaxprocs := func(env []string, args ...string) int {
		t.Helper()
		addr, mon := freeAddr(t), freeAddr(t)
		br := startProcEnv(t, env, append([]string{"broker", "--listen", addr, "--monitor", mon, "--no-jetstream"}, args...)...)
		defer br.stop(t)
		waitNATS(t, br, addr)
		resp, err := http.Get("http://" + mon + "/varz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v struct {
			MaxProcs int `json:"gomaxprocs"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v.MaxProcs
	}
	if n := gomaxprocs([]string{"GOMAXPROCS=2"}, "--procs", "1"); n != 1 {
		t.Errorf("--procs 1 with GOMAXPROCS=2: the broker runs on %d cores", n)
	}
	if n := gomaxprocs([]string{"GOMAXPROCS=1"}); n != 1 {
		t.Errorf("no --procs with GOMAXPROCS=1: the broker runs on %d cores, want the environment's", n)
	}
	cmd, _, stderr := natsmesh(t, nil, "broker", "--procs", "-1")
	if code := exitStatus(t, cmd.Run()); code == 0 || !strings.Contains(stderr.String(), "--procs -1: want 0 or more") {
		t.Errorf("--procs -1: exit %d, %s", code, stderr)
	}
}
