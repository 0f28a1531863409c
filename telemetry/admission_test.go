package telemetry_test

import (
	"testing"

	"github.com/natsmesh/natsmesh/telemetry"
)

type admission struct {
	limit   int
	refused uint64
}

func (a *admission) Limit() int      { return a.limit }
func (a *admission) Refused() uint64 { return a.refused }

// TestAdmissionMetrics: an inbound dispatch's limit and its refusals are
// read at each scrape, under its service and subset, and leave the page
// once removed.
func TestAdmissionMetrics(t *testing.T) {
	tel := newTelemetry(t, telemetry.Config{})
	a := &admission{limit: 4}
	remove := tel.ObserveAdmission("orders", "v2", a)
	labels := map[string]string{"service": "orders", "subset": "v2"}
	fams := scrape(t, tel)
	if got := value(fams, "natsmesh_inbound_limit", labels); got != 4 {
		t.Errorf("natsmesh_inbound_limit = %v, want 4", got)
	}
	a.limit, a.refused = 9, 17
	fams = scrape(t, tel)
	if got := value(fams, "natsmesh_inbound_limit", labels); got != 9 {
		t.Errorf("natsmesh_inbound_limit = %v, want 9", got)
	}
	if got := value(fams, "natsmesh_inbound_refused_total", labels); got != 17 {
		t.Errorf("natsmesh_inbound_refused_total = %v, want 17", got)
	}
	remove()
	remove()
	if got := value(scrape(t, tel), "natsmesh_inbound_limit", labels); got != -1 {
		t.Errorf("natsmesh_inbound_limit = %v once removed, want no series", got)
	}
}
