package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/internal/testcert"
)

// proc is a natsmesh process started for a test and killed at its end if
// still running.
type proc struct {
	cmd    *exec.Cmd
	stderr *meshtest.Buffer
	stdout *meshtest.Buffer
	exited chan error
}

func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	return startProcEnv(t, nil, args...)
}

// startProcEnv is startProc with env added to the process's environment.
func startProcEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd, _, _ := natsmesh(t, env, args...)
	p := &proc{cmd: cmd, stderr: &meshtest.Buffer{}, stdout: &meshtest.Buffer{}, exited: make(chan error, 1)}
	cmd.Stderr, cmd.Stdout = p.stderr, p.stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState != nil {
			return
		}
		// SIGTERM first, so that the process removes what it made (a
		// broker's temporary store); SIGKILL if it does not exit.
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// stop sends SIGTERM and returns the exit status.
func (p *proc) stop(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		return exitStatus(t, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit after SIGTERM\n%s", p.cmd.Args, p.stderr)
		return -1
	}
}

// waitUntil polls ready until it returns nil; the test fails if the process
// exits first or ready still fails after 20s.
func (p *proc) waitUntil(t *testing.T, what string, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := ready()
		if err == nil {
			return
		}
		select {
		case err := <-p.exited:
			t.Fatalf("%v exited early: %v\n%s", p.cmd.Args, err, p.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v\n%s", what, err, p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitHTTP polls url until it answers 200.
func waitHTTP(t *testing.T, p *proc, url string) {
	t.Helper()
	p.waitUntil(t, url+" not ready", func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %s", resp.Status)
		}
		return nil
	})
}

// waitNATS polls addr until it accepts a NATS connection.
func waitNATS(t *testing.T, p *proc, addr string) {
	t.Helper()
	p.waitUntil(t, "no NATS connection to "+addr, func() error {
		nc, err := nats.Connect("nats://"+addr, nats.Timeout(time.Second))
		if err == nil {
			nc.Close()
		}
		return err
	})
}

func startBrokerProc(t *testing.T) string {
	t.Helper()
	addr := freeAddr(t)
	p := startProc(t, "broker", "--listen", addr, "--monitor", "off", "--no-jetstream")
	waitNATS(t, p, addr)
	return "nats://" + addr
}

// TestAgentSIGTERMUnderLoad runs a broker, two sidecars of one service and a
// caller's sidecar as real processes, keeps calls flowing, sends SIGTERM to
// one instance, and expects not one failed call and exit status 0.
func TestAgentSIGTERMUnderLoad(t *testing.T) {
	natsURL := startBrokerProc(t)
	var served [2]atomic.Int64
	upstream := func(i int) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			served[i].Add(1)
			time.Sleep(time.Millisecond)
			fmt.Fprintf(w, "instance %d", i)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	var instances [2]*proc
	for i := range instances {
		admin := freeAddr(t)
		instances[i] = startProc(t, "agent", "--service", "orders", "--upstream", upstream(i), "--nats", natsURL,
			"--proxy", "off", "--grpc-proxy", "off", "--admin", admin, "--health-interval", "100ms")
		waitHTTP(t, instances[i], "http://"+admin+"/readyz")
	}
	proxy, admin := freeAddr(t), freeAddr(t)
	web := startProc(t, "agent", "--service", "web", "--nats", natsURL, "--proxy", proxy, "--grpc-proxy", "off", "--admin", admin)
	waitHTTP(t, web, "http://"+admin+"/readyz")

	proxyURL, _ := url.Parse("http://" + proxy)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), MaxIdleConnsPerHost: 8}, Timeout: 10 * time.Second}
	var ok, failed atomic.Int64
	var failures sync.Map
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20000 && ctx.Err() == nil; i++ {
				resp, err := client.Get("http://orders/work")
				if err != nil {
					failed.Add(1)
					failures.Store(err.Error(), true)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					failures.Store(fmt.Sprintf("%d %s", resp.StatusCode, body), true)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				cancel()
				wg.Wait()
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("both instances to take load", func() bool { return served[0].Load() > 100 && served[1].Load() > 100 })
	if code := instances[1].stop(t); code != 0 {
		t.Errorf("agent exit status %d after SIGTERM, want 0\n%s", code, instances[1].stderr)
	}
	after := ok.Load()
	waitFor("load to go on without the stopped instance", func() bool { return ok.Load() > after+300 })
	cancel()
	wg.Wait()
	if n := failed.Load(); n != 0 {
		var msgs []string
		failures.Range(func(k, _ any) bool { msgs = append(msgs, k.(string)); return true })
		t.Fatalf("%d of %d calls failed across SIGTERM: %s", n, n+ok.Load(), strings.Join(msgs, "; "))
	}
	if !strings.Contains(instances[1].stderr.String(), "natsmesh agent stopped") {
		t.Errorf("the agent did not log a clean stop:\n%s", instances[1].stderr)
	}
	t.Logf("%d calls, 0 failed; instance 0 served %d, instance 1 served %d", ok.Load(), served[0].Load(), served[1].Load())
}

func TestAgentBadConfig(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no service", []string{"agent"}, "natsmesh: agent: --service is required"},
		{"bad service", []string{"agent", "--service", "Orders!", "--proxy", "off", "--grpc-proxy", "off", "--admin", "off", "--connect-timeout", "1s"}, "natsmesh: agent: invalid configuration: service name \"Orders!\""},
		{"upper-case service", []string{"agent", "--service", "Orders", "--upstream", "http://127.0.0.1:1"}, `natsmesh: agent: invalid configuration: service name "Orders": names are lower case: use "orders"`},
		{"nothing to do", []string{"agent", "--service", "web", "--proxy", "off", "--grpc-proxy", "off", "--admin", "off"}, "natsmesh: agent: invalid configuration: nothing to do"},
		{"bad bind", []string{"agent", "--service", "web", "--proxy", "off", "--grpc-proxy", "off", "--admin", "off", "--bind", "orders"}, `natsmesh: agent: --bind "orders": want SERVICE=ADDR`},
		{"port in use", []string{"agent", "--service", "web", "--grpc-proxy", "off", "--admin", "off", "--proxy", busy.Addr().String()}, "natsmesh: agent: HTTP proxy listener: listen tcp " + busy.Addr().String()},
		{"bad upstream", []string{"agent", "--service", "web", "--upstream", "ftp://x"}, `natsmesh: agent: invalid configuration: upstream "ftp://x": scheme must be http, https, h2c or h2: want http://HOST:PORT`},
		{"upstream without scheme", []string{"agent", "--service", "web", "--upstream", "127.0.0.1:8080"}, `natsmesh: agent: invalid configuration: upstream "127.0.0.1:8080": no scheme: want http://HOST:PORT[/BASE-PATH] or https://... for HTTP, h2c://HOST:PORT or h2://HOST:PORT (TLS) for gRPC`},
		{"CA file without a certificate", []string{"agent", "--service", "web", "--upstream", "http://127.0.0.1:8080", "--upstream-ca", "agent_test.go"}, `natsmesh: agent: invalid configuration: upstream CA agent_test.go: no PEM certificate in it`},
		{"half a client cert", []string{"agent", "--service", "web", "--upstream", "https://127.0.0.1:8443", "--upstream-cert", "agent_test.go"}, `natsmesh: agent: invalid configuration: the upstream's client certificate needs both a certificate and a key file`},
		{"typo'd flag", []string{"agent", "--service", "web", "--upstrem", "http://127.0.0.1:1"}, "natsmesh: agent: unknown flag --upstrem: did you mean --upstream?"},
		{"no broker", []string{"agent", "--service", "web", "--proxy", "127.0.0.1:0", "--grpc-proxy", "off", "--admin", "off", "--nats", "nats://127.0.0.1:1", "--connect-timeout", "500ms"}, "natsmesh: agent: no NATS connection to nats://127.0.0.1:1 after 500ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, _, stderr := natsmesh(t, nil, tc.args...)
			err := cmd.Run()
			if code := exitStatus(t, err); code != 2 {
				t.Fatalf("exit status %d, want 2\n%s", code, stderr)
			}
			out := withoutConnecting(strings.TrimRight(stderr.String(), "\n"))
			if !strings.HasPrefix(out, tc.want) || strings.Contains(out, "\n") {
				t.Errorf("stderr = %q, want one line starting with %q (after the line saying where it connects)", out, tc.want)
			}
		})
	}
}

func TestAgentConfigFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		path := dir + "/" + name
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write("agent.yaml", "service: web\nsubset:\nproxy: \"off\"\ngrpc-proxy: \"off\"\nadmin: \"off\"\nnats: nats://127.0.0.1:1\nconnect-timeout: 300ms\nbind: [orders=127.0.0.1:0]\n")
	bad := write("bad.yaml", "service: web\nlisten_port: 80\n")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		// The settings reach the agent: it tries the file's NATS URL.
		{"file applies", []string{"agent", "--config", good}, "natsmesh: agent: no NATS connection to nats://127.0.0.1:1 after 300ms"},
		// A flag wins over the file.
		{"flag wins", []string{"agent", "--config", good, "--connect-timeout", "200ms"}, "natsmesh: agent: no NATS connection to nats://127.0.0.1:1 after 200ms"},
		{"unknown key", []string{"agent", "--config", bad}, `natsmesh: agent: --config ` + bad + `: unknown setting "listen_port"`},
		{"missing file", []string{"agent", "--config", dir + "/nope.yaml"}, "natsmesh: agent: --config: open " + dir + "/nope.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, _, stderr := natsmesh(t, nil, tc.args...)
			if code := exitStatus(t, cmd.Run()); code != 2 {
				t.Fatalf("exit status %d, want 2\n%s", code, stderr)
			}
			if out := withoutConnecting(strings.TrimRight(stderr.String(), "\n")); !strings.HasPrefix(out, tc.want) {
				t.Errorf("stderr = %q, want it to start with %q", out, tc.want)
			}
		})
	}
}

// TestDemo runs `natsmesh demo` as README's main command does, calls it
// through its gateway, and stops it with SIGTERM.
func TestDemo(t *testing.T) {
	gw := freeAddr(t)
	ui := freeAddr(t)
	p := startProc(t, "demo", "--listen", "127.0.0.1:-1", "--monitor", "off", "--gateway", gw, "--proxy", freeAddr(t), "--admin", ui)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Post("http://"+gw+"/orders", "application/json", strings.NewReader(`{"sku":"apple","qty":1}`))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("order: %d %s", resp.StatusCode, body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo gateway not up: %v\n%s", err, p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.Get("http://" + ui + "/ui/api/graph")
	if err != nil {
		t.Fatal(err)
	}
	graph, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(graph), `"name":"inventory"`) {
		t.Fatalf("dashboard graph: %d %s", resp.StatusCode, graph)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("demo exit status %d after SIGTERM\n%s", code, p.stderr)
	}
}

// TestAgentOverTLS: a broker serving TLS, a sidecar that verifies it with
// --nats-tls-ca, and one that does not trust it.
func TestAgentOverTLS(t *testing.T) {
	cert, key := testcert.SelfSigned(t)
	addr := freeAddr(t)
	startProc(t, "broker", "--listen", addr, "--monitor", "off", "--no-jetstream", "--tls-cert", cert, "--tls-key", key)
	admin := freeAddr(t)
	a := startProc(t, "agent", "--service", "web", "--nats", "tls://"+addr, "--nats-tls-ca", cert,
		"--proxy", "127.0.0.1:0", "--grpc-proxy", "off", "--admin", admin)
	waitHTTP(t, a, "http://"+admin+"/readyz")
	if code := a.stop(t); code != 0 {
		t.Fatalf("agent exit %d\n%s", code, a.stderr)
	}
	// Without the CA the agent cannot verify the broker and says so.
	cmd, _, stderr := natsmesh(t, nil, "agent", "--service", "web", "--nats", "tls://"+addr,
		"--proxy", "127.0.0.1:0", "--grpc-proxy", "off", "--admin", "off", "--connect-timeout", "1s")
	if code := exitStatus(t, cmd.Run()); code != 2 || !strings.Contains(stderr.String(), "no NATS connection") {
		t.Fatalf("untrusted broker: exit %d, %s", code, stderr)
	}
}

// TestAgentTLSUpstream: `natsmesh agent --upstream https://...` with
// --upstream-ca, --upstream-cert and --upstream-key serves a service that
// requires a client certificate (issue 19: the scheme was refused).
func TestAgentTLSUpstream(t *testing.T) {
	srvCert, srvKey := testcert.SelfSigned(t)
	cliCert, cliKey := testcert.SelfSigned(t)
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "tls "+r.Proto) }))
	up.TLS = testcert.ServerTLS(t, srvCert, srvKey, cliCert)
	up.EnableHTTP2 = true
	up.StartTLS()
	t.Cleanup(up.Close)

	natsURL := startBrokerProc(t)
	ordersAdmin := freeAddr(t)
	orders := startProc(t, "agent", "--service", "orders", "--upstream", up.URL, "--nats", natsURL,
		"--upstream-ca", srvCert, "--upstream-cert", cliCert, "--upstream-key", cliKey,
		"--proxy", "off", "--grpc-proxy", "off", "--admin", ordersAdmin, "--health-interval", "100ms")
	waitHTTP(t, orders, "http://"+ordersAdmin+"/readyz")
	proxy, admin := freeAddr(t), freeAddr(t)
	web := startProc(t, "agent", "--service", "web", "--nats", natsURL, "--proxy", proxy, "--grpc-proxy", "off", "--admin", admin)
	waitHTTP(t, web, "http://"+admin+"/readyz")
	proxyURL, _ := url.Parse("http://" + proxy)
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}).Get("http://orders/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "tls HTTP/2.0" {
		t.Fatalf("%d %q, want 200 \"tls HTTP/2.0\"\n%s", resp.StatusCode, body, orders.stderr)
	}
}

// TestAgentNKeyAuth: a broker that admits only one NKey user; the sidecar
// with that user's seed fails closed without a mesh file (the broker has
// no JetStream, so no store): /readyz 503 "no mesh file yet" and calls
// answered no-mesh-file; --policy off is refused at start; with a mesh
// file it serves. One without credentials is refused with a clear error.
func TestAgentNKeyAuth(t *testing.T) {
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := user.Seed()
	pub, _ := user.PublicKey()
	dir := t.TempDir()
	seedFile := dir + "/web.nk"
	conf := dir + "/nats.conf"
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, fmt.Appendf(nil, "authorization { users = [ { nkey: %s } ] }\n", pub), 0o600); err != nil {
		t.Fatal(err)
	}
	mesh := dir + "/mesh.yaml"
	if err := os.WriteFile(mesh, []byte("version: 1\nservices:\n  web: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	startProc(t, "broker", "--nats-config", conf, "--listen", addr, "--monitor", "off", "--no-jetstream")

	admin, proxy := freeAddr(t), freeAddr(t)
	closed := startProc(t, "agent", "--service", "web", "--nats", "nats://"+addr, "--nkey", seedFile,
		"--proxy", proxy, "--grpc-proxy", "off", "--admin", admin, "--policy-cache", dir+"/cache.json")
	closed.waitUntil(t, "/readyz does not say why it is not ready", func() error {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "no mesh file yet") {
			return fmt.Errorf("/readyz: %s %q", resp.Status, body)
		}
		return nil
	})
	client := &http.Client{Transport: &http.Transport{Proxy: func(*http.Request) (*url.URL, error) { return url.Parse("http://" + proxy) }}}
	resp, err := client.Get("http://web/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Mesh-Error") != "no-mesh-file" {
		t.Errorf("a call without a mesh file: %s, Mesh-Error %q; want 503 no-mesh-file", resp.Status, resp.Header.Get("Mesh-Error"))
	}
	if !strings.Contains(closed.stderr.String(), "no mesh file yet") {
		t.Errorf("no warning at start:\n%s", closed.stderr)
	}
	closed.stop(t)

	cmd, _, stderr := natsmesh(t, nil, "agent", "--service", "web", "--nats", "nats://"+addr, "--nkey", seedFile,
		"--proxy", "127.0.0.1:0", "--grpc-proxy", "off", "--admin", "off", "--policy", "off")
	if code := exitStatus(t, cmd.Run()); code != 2 || !strings.Contains(stderr.String(), "invalid configuration") || !strings.Contains(stderr.String(), "authenticates") {
		t.Fatalf("--policy off with an NKey: exit %d, %s", code, stderr)
	}

	admin = freeAddr(t)
	a := startProc(t, "agent", "--service", "web", "--nats", "nats://"+addr, "--nkey", seedFile,
		"--proxy", "127.0.0.1:0", "--grpc-proxy", "off", "--admin", admin, "--policy", mesh)
	waitHTTP(t, a, "http://"+admin+"/readyz")
	cmd, _, stderr = natsmesh(t, nil, "agent", "--service", "web", "--nats", "nats://"+addr,
		"--proxy", "127.0.0.1:0", "--grpc-proxy", "off", "--admin", "off", "--connect-timeout", "5s")
	if code := exitStatus(t, cmd.Run()); code != 2 || !strings.Contains(stderr.String(), "refused the credentials") {
		t.Fatalf("no credentials: exit %d, %s", code, stderr)
	}
}

// TestStopWhileConnecting: a sidecar or gateway stopped while it still waits
// for its broker exits 0, as after any graceful stop.
func TestStopWhileConnecting(t *testing.T) {
	for _, args := range [][]string{
		{"agent", "--service", "web", "--proxy", "127.0.0.1:0", "--grpc-proxy", "off", "--admin", "off"},
		{"bridge", "--gateway", "127.0.0.1:0", "--admin", "off", "--route", "/=web"},
	} {
		t.Run(args[0], func(t *testing.T) {
			p := startProc(t, append(args, "--nats", "nats://127.0.0.1:1", "--connect-timeout", "60s", "--log-level", "debug")...)
			// The debug line comes after the signal handler is installed.
			p.waitUntil(t, "never tried to connect", func() error {
				if !strings.Contains(p.stderr.String(), "connecting to NATS") {
					return errors.New("no \"connecting to NATS\" line yet")
				}
				return nil
			})
			if code := p.stop(t); code != 0 {
				t.Fatalf("exit %d after SIGTERM while connecting\n%s", code, p.stderr)
			}
		})
	}
}

// withoutConnecting is out less the log lines that say where the agent
// connects and that it still tries (issue 21: an agent says so).
func withoutConnecting(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, `msg="connecting to NATS"`) || strings.Contains(l, `msg="still connecting to NATS"`) {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}
