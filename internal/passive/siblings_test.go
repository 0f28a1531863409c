package passive

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"go.uber.org/goleak"

	"github.com/natsmesh/natsmesh/internal/discovery"
	"github.com/natsmesh/natsmesh/internal/meshtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Keep-alive connections of the end-to-end tests' HTTP clients.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}

// instance is one instance of a service as the agent's inbound side holds
// it, its queue groups reduced to a flag: its member, answering on
// StatusSubject through its discovery responder, as the agent's does.
type instance struct {
	*Member
	id      string
	serving atomic.Bool
}

// startInstance starts an instance of service, serving, on its own
// connection to the test's broker.
func startInstance(t *testing.T, nc *nats.Conn, service string) *instance {
	t.Helper()
	in := &instance{id: nuid.Next()}
	in.serving.Store(true)
	in.Member = New(Config{
		Conn: nc, Service: service, ID: func() string { return in.id },
		Serving: in.serving.Load,
		Leave:   func() { in.serving.Store(false) },
		Return:  func() { in.serving.Store(true) },
	})
	r, err := discovery.Start(nc, discovery.Config{
		Name: service, ID: in.id,
		Control: map[string]nats.MsgHandler{StatusSubject(service): in.Answer(in.id)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.End()
		in.Stop()
		r.Stop()
	})
	return in
}

// fourPay starts four instances of pay.
func fourPay(t *testing.T) []*instance {
	t.Helper()
	b := meshtest.Broker(t)
	pay := make([]*instance, 4)
	for i := range pay {
		pay[i] = startInstance(t, meshtest.Conn(t, b), "pay")
	}
	return pay
}

// count asks for the siblings as each of the given instances, all at once.
func count(t *testing.T, ins ...*instance) [][]Sibling {
	t.Helper()
	views := make([][]Sibling, len(ins))
	errs := make([]error, len(ins))
	var wg sync.WaitGroup
	for i, in := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			views[i], errs[i] = in.Count(ctx)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("count %d: %v", i, err)
		}
	}
	return views
}

func mustClaim(t *testing.T, in *instance) Place {
	t.Helper()
	p, ok := in.Claim()
	if !ok {
		t.Fatal("claim refused")
	}
	return p
}

// Two instances that claim before either counts see both claims, in the
// same order, so they agree: under 25% of four the earlier claim leaves
// and the later stays; under 50% both leave.
func TestClaimsAgree(t *testing.T) {
	pay := fourPay(t)
	first, second := mustClaim(t, pay[0]), mustClaim(t, pay[1])
	if !first.Since.Before(second.Since) {
		t.Fatalf("places %v, %v: the later claim is not after", first.Since, second.Since)
	}
	views := count(t, pay[0], pay[1])
	for i, v := range views {
		if len(v) != 4 {
			t.Fatalf("count %d heard %d instances, want 4", i, len(v))
		}
		quarter := Allowed(v, 25)
		if quarter[first.ID] != "" || quarter[second.ID] == "" {
			t.Errorf("count %d under 25%%: %q", i, quarter)
		}
		half := Allowed(v, 50)
		if half[first.ID] != "" || half[second.ID] != "" {
			t.Errorf("count %d under 50%%: %q", i, half)
		}
	}
	if _, ok := pay[0].Claim(); ok {
		t.Error("a second claim while one is held")
	}
	pay[1].WithdrawFor("test", 0) // the claim ends
	if got := Allowed(count(t, pay[0])[0], 25); len(got) != 1 || got[first.ID] != "" {
		t.Errorf("after the second claim ended: %q", got)
	}
}

// A claim made after answering a count that did not show it comes after
// the asker's place even when the asker's clock is ahead: the count
// carries the asker's place, and the answering instance's next claim is
// placed after it.
func TestClaimAfterAnsweringComesLater(t *testing.T) {
	pay := fourPay(t)
	ahead := mustClaim(t, pay[0])
	ahead.Since = ahead.Since.Add(time.Hour) // as if its clock were an hour ahead
	pay[0].mu.Lock()
	pay[0].since = ahead.Since
	pay[0].mu.Unlock()
	count(t, pay[0]) // pay[1] answers, not claiming yet
	later := mustClaim(t, pay[1])
	if !later.Since.After(ahead.Since) {
		t.Fatalf("the later claim's place %v is not after the asker's %v", later.Since, ahead.Since)
	}
	for i, v := range count(t, pay[0], pay[1]) {
		if got := Allowed(v, 25); got[ahead.ID] != "" || got[later.ID] == "" {
			t.Errorf("count %d: %q", i, got)
		}
	}
}

// An instance out keeps its place against a later claim whose clock says
// it came first.
func TestEjectedKeepsPlace(t *testing.T) {
	pay := fourPay(t)
	out := mustClaim(t, pay[0])
	if !pay[0].WithdrawFor("test", time.Minute) {
		t.Fatal("withdrawal refused")
	}
	if pay[0].serving.Load() {
		t.Fatal("still serving")
	}
	if !pay[0].Out() || pay[0].Ejected() == "" {
		t.Fatalf("Out %v, Ejected %q: want out, with a reason", pay[0].Out(), pay[0].Ejected())
	}
	behind := mustClaim(t, pay[1])
	behind.Since = out.Since.Add(-time.Hour) // as if its clock were an hour behind
	pay[1].mu.Lock()
	pay[1].since = behind.Since
	pay[1].mu.Unlock()
	v := count(t, pay[1])[0]
	if got := Allowed(v, 25); got[out.ID] != "" || got[behind.ID] == "" {
		t.Errorf("%q", got)
	}
	// Back in, the place is given up.
	pay[0].WithdrawFor("test", 0)
	meshtest.CheckFor(t, 2*time.Second, 5*time.Millisecond, func() error {
		if !pay[0].serving.Load() {
			return errors.New("not back")
		}
		return nil
	})
	v = count(t, pay[1])[0]
	if got := Allowed(v, 25); len(got) != 1 || got[behind.ID] != "" {
		t.Errorf("after the first came back: %q", got)
	}
}

// An instance that announces itself is known to its siblings, and they to
// it, so each one's next count waits for the other.
func TestAnnounce(t *testing.T) {
	b := meshtest.Broker(t)
	a := startInstance(t, meshtest.Conn(t, b), "pay")
	c := startInstance(t, meshtest.Conn(t, b), "pay")
	c.Announce(c.id)
	known := func(m *instance, id string) func() error {
		return func() error {
			m.mu.Lock()
			defer m.mu.Unlock()
			if _, ok := m.known[id]; !ok {
				return errors.New("not known: " + id)
			}
			return nil
		}
	}
	meshtest.CheckFor(t, 2*time.Second, 5*time.Millisecond, known(a, c.id))
	meshtest.CheckFor(t, 2*time.Second, 5*time.Millisecond, known(c, a.id))
}

// An instance that asks for a count (or announces itself) while another's
// count runs stays known when that count ends, though the count did not
// hear from it, so the next count waits for it; one known before the
// count that did not answer it is forgotten.
func TestKnownDuringCountKept(t *testing.T) {
	pay := fourPay(t)
	a := pay[0]
	a.mu.Lock()
	a.know("ghost") // gone: this count waits knownWait for it
	a.mu.Unlock()
	nc := pay[1].cfg.Conn
	// The newcomer must ask after the count began (a's request is out),
	// not merely after the goroutine was started: under load the request
	// can come late, and a newcomer noted before it is "known before".
	asked, err := nc.SubscribeSync(StatusSubject("pay"))
	if err != nil {
		t.Fatal(err)
	}
	defer asked.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); count(t, a) }()
	for {
		m, err := asked.NextMsg(2 * time.Second)
		if err != nil {
			t.Fatalf("setup: a's count request never came: %v", err)
		}
		var req StatusRequest
		if json.Unmarshal(m.Data, &req) == nil && req.ID == a.id {
			break
		}
	}
	meshtest.CheckFor(t, 2*time.Second, 5*time.Millisecond, func() error {
		if err := nc.Publish(StatusSubject("pay"), []byte(`{"id":"newcomer"}`)); err != nil {
			return err
		}
		if err := nc.Flush(); err != nil {
			return err
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if _, ok := a.known["newcomer"]; !ok {
			return errors.New("the newcomer's request was not noted")
		}
		return nil
	})
	select {
	case <-done:
		t.Fatal("setup: the count ended before the newcomer asked")
	default:
	}
	<-done
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.known["newcomer"]; !ok {
		t.Fatalf("the newcomer that asked during the count is forgotten: known %v", a.known)
	}
	if _, ok := a.known["ghost"]; ok {
		t.Fatalf("the ghost that did not answer is still known: %v", a.known)
	}
	if len(a.known) != 4 {
		t.Fatalf("known %v, want the 3 siblings and the newcomer", a.known)
	}
}

// Stop ends a count that is running and a withdrawal's timer (goleak, in
// TestMain, checks no timer or goroutine is left). The withdrawal ends
// without putting the instance back, and no claim is taken after.
func TestStopEndsCountAndCoolOff(t *testing.T) {
	pay := fourPay(t)
	a, c := pay[0], pay[1]
	mustClaim(t, c)
	if !c.WithdrawFor("test", time.Minute) {
		t.Fatal("withdrawal refused")
	}
	a.mu.Lock()
	a.know("ghost") // gone: a's count waits for it
	a.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		_, err := a.Count(context.Background())
		done <- err
	}()
	// a's count is running once a sibling has answered its request.
	meshtest.CheckFor(t, 2*time.Second, 5*time.Millisecond, func() error {
		pay[2].mu.Lock()
		defer pay[2].mu.Unlock()
		if _, ok := pay[2].known[a.id]; !ok {
			return errors.New("a's count has not asked yet")
		}
		return nil
	})
	a.Stop()
	c.Stop()
	// Without Stop the count would end well, after waiting for the ghost.
	if err := <-done; err == nil {
		t.Fatal("the count ended well though Stop ended it")
	}
	if c.Out() || c.serving.Load() {
		t.Fatalf("after Stop: Out %v, serving %v: want neither (no Return after Stop)", c.Out(), c.serving.Load())
	}
	if _, ok := c.Claim(); ok {
		t.Fatal("a claim after Stop")
	}
	if _, err := a.Count(context.Background()); err == nil {
		t.Fatal("a count after Stop")
	}
}

// Two instances; z claims, then x claims and its health checks withdraw it
// while its claim is held. z's count shows x leaving but not serving, and
// z may not leave: no instance of pay would serve.
func TestClaimWithdrawnByHealthCountsOut(t *testing.T) {
	b := meshtest.Broker(t)
	z := startInstance(t, meshtest.Conn(t, b), "pay")
	x := startInstance(t, meshtest.Conn(t, b), "pay")
	zp, xp := mustClaim(t, z), mustClaim(t, x)
	x.serving.Store(false) // what the agent's health loop does on failed checks
	v := count(t, z)[0]
	if len(v) != 2 {
		t.Fatalf("count heard %d instances, want 2: %+v", len(v), v)
	}
	got := Allowed(v, 50)
	if got[zp.ID] == "" {
		t.Fatalf("z may leave though x is not serving: %q (count %+v)", got, v)
	}
	if got[xp.ID] == "" {
		t.Fatalf("x, withdrawn by its health checks, may leave: %q", got)
	}
}

// TestAnswersOnlyItsOwnInbox: the status responder is no deputy. A request
// on the status subject whose reply subject is not under the service's
// own pair inbox (a JetStream or KV subject, another service's inbox) gets
// no answer there, and is not noted; one under it is answered.
func TestAnswersOnlyItsOwnInbox(t *testing.T) {
	b := meshtest.Broker(t)
	a := startInstance(t, meshtest.Conn(t, b), "pay")
	raw := meshtest.Conn(t, b)
	bad := []string{
		"$KV.natsmesh-policies.mesh",
		"$JS.API.STREAM.CREATE.PWN",
		"_INBOX_mesh.web.x",
		"_INBOX_mesh.pay.web.x", // the pair inbox of another peer
		"_INBOX_mesh.web.pay.x", // the pay's replies to web
		"_INBOX_mesh.pay.pay",   // no token after the inbox
		"mesh.pay._.web.http.GET",
	}
	leaked := make(chan *nats.Msg, len(bad))
	for _, subj := range bad {
		sub, err := raw.Subscribe(subj, func(m *nats.Msg) { leaked <- m })
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
	}
	good := StatusInbox("pay") + "probe"
	answers, err := raw.SubscribeSync(good)
	if err != nil {
		t.Fatal(err)
	}
	defer answers.Unsubscribe()
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}
	for i, reply := range bad {
		body := []byte(`{"id":"forger` + string(rune('a'+i)) + `"}`)
		if err := raw.PublishRequest(StatusSubject("pay"), reply, body); err != nil {
			t.Fatal(err)
		}
	}
	// Handled in order after the bad ones: its answer comes after theirs
	// would have.
	if err := raw.PublishRequest(StatusSubject("pay"), good, []byte(`{"id":"probe"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := answers.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("no answer in the service's own inbox: %v", err)
	}
	if err := a.cfg.Conn.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-leaked:
		t.Fatalf("the responder answered on %q", m.Subject)
	default:
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for id := range a.known {
		if strings.HasPrefix(id, "forger") {
			t.Errorf("a refused request was noted: %s", id)
		}
	}
	if _, ok := a.known["probe"]; !ok {
		t.Errorf("the good request was not noted: %v", a.known)
	}
}

// TestCountAsksInItsOwnInbox: counts and announcements ask with reply
// subjects under StatusInbox.
func TestCountAsksInItsOwnInbox(t *testing.T) {
	b := meshtest.Broker(t)
	a := startInstance(t, meshtest.Conn(t, b), "pay")
	raw := meshtest.Conn(t, b)
	sub, err := raw.SubscribeSync(StatusSubject("pay"))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}
	count(t, a)
	a.Announce(a.id)
	for range 2 {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(m.Reply, "_INBOX_mesh.pay.pay.") || len(m.Reply) == len("_INBOX_mesh.pay.pay.") {
			t.Errorf("a status request with reply %q, want under _INBOX_mesh.pay.pay.", m.Reply)
		}
	}
}

func TestUnderInbox(t *testing.T) {
	const inbox = "_INBOX_mesh.pay.pay."
	for reply, want := range map[string]bool{
		inbox + "x":              true,
		inbox + "x.y":            true,
		inbox:                    false,
		inbox + ".x":             false,
		inbox + "x.":             false,
		inbox + "x..y":           false,
		inbox + "*":              false,
		inbox + ">":              false,
		inbox + "a b":            false,
		"_INBOX_mesh.pay.pays.x": false,
		"_INBOX_mesh.pay.x":      false,
	} {
		if got := underInbox(inbox, reply); got != want {
			t.Errorf("underInbox(%q) = %v, want %v", reply, got, want)
		}
	}
}
