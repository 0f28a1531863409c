package streamtest

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSoak (issue 21, `make soak`): a fixed rate of requests (half POSTs)
// through web's agent to two instances of orders for a long time
// (NATSMESH_SOAK_FOR, default 10m; NATSMESH_SOAK_RATE requests/s, default
// 200), every agent's resident memory (VmRSS) and goroutines (its admin
// endpoint's goroutine profile, --pprof) sampled every thirtieth of the
// run. After the first quarter (warm-up), each stays flat: the mean of
// the last third of the samples is at most 10% (or 4 MiB, 16
// goroutines) above the highest of the first third after warm-up (a
// keep-alive pool that a burst grew keeps its goroutines: a plateau,
// which a leak, growing with the requests, is not). Every
// request is served; the ledger's rules hold as in every case.
func TestSoak(t *testing.T) {
	needEnv(t, soakEnv, "soak")
	span := 10 * time.Minute
	if v := os.Getenv("NATSMESH_SOAK_FOR"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 30*time.Second {
			t.Fatalf("NATSMESH_SOAK_FOR=%q: want a duration of 30s or more", v)
		}
		span = d
	}
	rate := 200
	if v := os.Getenv("NATSMESH_SOAK_RATE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("NATSMESH_SOAK_RATE=%q: want requests per second", v)
		}
		rate = n
	}
	m := newChaosMesh(t, chaosOpts{agent: []string{"--pprof"}})
	admins := []string{m.callerAdmin}
	for _, in := range m.instances {
		admins = append(admins, in.admin)
	}
	agents := m.agents()

	type sample struct {
		at   time.Duration
		rss  []int64
		gors []int
	}
	var samples []sample
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		start := time.Now()
		tick := time.NewTicker(span / 30)
		defer tick.Stop()
		for {
			s := sample{at: time.Since(start)}
			for i, p := range agents {
				rss, err := procStatus(p, "VmRSS")
				if err != nil {
					t.Errorf("%s: %v", p.name, err)
				}
				g, err := goroutines(admins[i])
				if err != nil {
					t.Errorf("%s: %v", p.name, err)
				}
				s.rss, s.gors = append(s.rss, rss), append(s.gors, g)
			}
			samples = append(samples, s)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	outs, at := load{rate: rate, span: span, client: m.client}.run(t, "soak")
	close(stop)
	<-sampled
	f := check(t, outs, at, verdict{failedGETs: 0, failedPOSTs: 0}, m.services()...)

	for _, s := range samples {
		line := fmt.Sprintf("soak sample at %v:", s.at.Round(time.Second))
		for i, p := range agents {
			line += fmt.Sprintf(" %s rss=%.1fMiB goroutines=%d", agentLabel(p), float64(s.rss[i])/(1<<20), s.gors[i])
		}
		t.Log(line)
	}
	var after []sample // past warm-up
	for _, s := range samples {
		if s.at >= span/4 {
			after = append(after, s)
		}
	}
	third := len(after) / 3
	if third == 0 {
		t.Fatalf("%d samples past warm-up: too few to tell a trend", len(after))
	}
	early, late := after[:third], after[len(after)-third:]
	var mem []string
	for i, p := range agents {
		// The early third's highest level (a connection pool grown by a
		// burst keeps its goroutines and buffers: a plateau, not a
		// leak) against the last third's mean.
		var r0, r1, g0, g1 float64
		for _, s := range early {
			r0, g0 = max(r0, float64(s.rss[i])), max(g0, float64(s.gors[i]))
		}
		for _, s := range late {
			r1, g1 = r1+float64(s.rss[i])/float64(third), g1+float64(s.gors[i])/float64(third)
		}
		mem = append(mem, fmt.Sprintf("%s=%.1f->%.1fMiB/%.0f->%.0fg", agentLabel(p), r0/(1<<20), r1/(1<<20), g0, g1))
		if r1 > max(r0*1.1, r0+4<<20) {
			t.Errorf("%s's RSS grew from %.1f MiB to %.1f MiB after warm-up", p.name, r0/(1<<20), r1/(1<<20))
		}
		if g1 > max(g0*1.1, g0+16) {
			t.Errorf("%s's goroutines grew from %.0f to %.0f after warm-up", p.name, g0, g1)
		}
	}
	f.memory = strings.Join(mem, ",")
	f.extra = fmt.Sprintf("span=%v rate=%d/s", span, rate)
	report(t, "soak", f)
}

// goroutines is an agent's goroutine count, from the first line of its
// admin endpoint's goroutine profile ("goroutine profile: total N").
func goroutines(admin string) (int, error) {
	resp, err := http.Get("http://" + admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	v, ok := strings.CutPrefix(strings.TrimSpace(line), "goroutine profile: total ")
	if !ok {
		return 0, fmt.Errorf("goroutine profile: %s, %q", resp.Status, line)
	}
	return strconv.Atoi(v)
}
