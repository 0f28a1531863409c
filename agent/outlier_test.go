package agent

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/traffic"
)

// fourPay starts four in-process instances of pay.
func fourPay(t *testing.T) []*Agent {
	t.Helper()
	b := meshtest.Broker(t)
	pay := make([]*Agent, 4)
	for i := range pay {
		pay[i] = startAgent(t, b, Config{Service: "pay"}, func(a *Agent) {
			if err := a.Handle(http.NotFoundHandler()); err != nil {
				t.Fatal(err)
			}
		})
	}
	return pay
}

// count asks for the siblings as each of the given agents, all at once.
func count(t *testing.T, as ...*Agent) [][]traffic.Sibling {
	t.Helper()
	views := make([][]traffic.Sibling, len(as))
	errs := make([]error, len(as))
	var wg sync.WaitGroup
	for i, a := range as {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			views[i], errs[i] = a.siblings(ctx)
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

func mustClaim(t *testing.T, a *Agent) traffic.Place {
	t.Helper()
	p, ok := a.claim()
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
		quarter := traffic.Allowed(v, 25)
		if quarter[first.ID] != "" || quarter[second.ID] == "" {
			t.Errorf("count %d under 25%%: %q", i, quarter)
		}
		half := traffic.Allowed(v, 50)
		if half[first.ID] != "" || half[second.ID] != "" {
			t.Errorf("count %d under 50%%: %q", i, half)
		}
	}
	if _, ok := pay[0].claim(); ok {
		t.Error("a second claim while one is held")
	}
	pay[1].withdrawFor("test", 0) // the claim ends
	if got := traffic.Allowed(count(t, pay[0])[0], 25); len(got) != 1 || got[first.ID] != "" {
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
	pay[0].in.ej.mu.Lock()
	pay[0].in.ej.since = ahead.Since
	pay[0].in.ej.mu.Unlock()
	count(t, pay[0]) // pay[1] answers, not claiming yet
	later := mustClaim(t, pay[1])
	if !later.Since.After(ahead.Since) {
		t.Fatalf("the later claim's place %v is not after the asker's %v", later.Since, ahead.Since)
	}
	for i, v := range count(t, pay[0], pay[1]) {
		if got := traffic.Allowed(v, 25); got[ahead.ID] != "" || got[later.ID] == "" {
			t.Errorf("count %d: %q", i, got)
		}
	}
}

// An instance out keeps its place against a later claim whose clock says
// it came first.
func TestEjectedKeepsPlace(t *testing.T) {
	pay := fourPay(t)
	out := mustClaim(t, pay[0])
	if !pay[0].withdrawFor("test", time.Minute) {
		t.Fatal("withdrawal refused")
	}
	if pay[0].Serving() {
		t.Fatal("still serving")
	}
	behind := mustClaim(t, pay[1])
	behind.Since = out.Since.Add(-time.Hour) // as if its clock were an hour behind
	pay[1].in.ej.mu.Lock()
	pay[1].in.ej.since = behind.Since
	pay[1].in.ej.mu.Unlock()
	v := count(t, pay[1])[0]
	if got := traffic.Allowed(v, 25); got[out.ID] != "" || got[behind.ID] == "" {
		t.Errorf("%q", got)
	}
	// Back in, the place is given up.
	pay[0].withdrawFor("test", 0)
	meshtest.CheckFor(t, 2*time.Second, 5*time.Millisecond, func() error {
		if !pay[0].Serving() {
			return errors.New("not back")
		}
		return nil
	})
	v = count(t, pay[1])[0]
	if got := traffic.Allowed(v, 25); len(got) != 1 || got[behind.ID] != "" {
		t.Errorf("after the first came back: %q", got)
	}
}
