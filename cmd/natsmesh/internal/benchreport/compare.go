package benchreport

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"text/tabwriter"
	"time"
)

// Figures are the measures of one row that a comparison follows.
type Figures struct {
	ReqPerSec float64       `json:"req_per_s"`
	P50       time.Duration `json:"p50_ns"`
	P99       time.Duration `json:"p99_ns"`
	// CPUPer1k is the CPU seconds per 1,000 calls of every process of the
	// row, the client (bench process) included.
	CPUPer1k float64 `json:"cpu_s_per_1k_req"`
	// Allocs is the heap allocations per call of every process that
	// counts its own: the client and the agents.
	Allocs float64 `json:"allocs_per_req"`
	// PeakRSSMB is the largest peak RSS of the row's component processes,
	// in MiB (the client's is never measured).
	PeakRSSMB float64 `json:"peak_rss_mib"`
}

// FiguresOf sums up row.
func FiguresOf(row *Row) Figures {
	f := Figures{ReqPerSec: row.ReqPerSec, P50: row.P50, P99: row.P99,
		CPUPer1k: row.Client.CPUPer1k, Allocs: row.Client.AllocsPerReq}
	for _, c := range row.Components {
		f.CPUPer1k += c.CPUPer1k
		f.Allocs += c.AllocsPerReq
		f.PeakRSSMB = math.Max(f.PeakRSSMB, c.PeakRSSMB)
	}
	return f
}

// Change is one scenario under one load in a baseline run and in this
// one. A row measured in only one of the two has Status "new" (only in
// this run) or "gone" (only in the baseline), and zero Figures for the
// other.
type Change struct {
	Scenario string  `json:"scenario"`
	Load     string  `json:"load"`
	Status   string  `json:"status,omitempty"`
	Base     Figures `json:"base"`
	Now      Figures `json:"now"`
}

// Throughput is Now's calls per second over Base's; 0 when either is
// missing.
func (c Change) Throughput() float64 {
	if c.Base.ReqPerSec <= 0 || c.Now.ReqPerSec <= 0 {
		return 0
	}
	return c.Now.ReqPerSec / c.Base.ReqPerSec
}

// Compare matches the rows of now with those of base by scenario and load:
// now's rows in their order, then the rows base alone has.
func Compare(base, now *Report) []Change {
	var out []Change
	for i := range now.Rows {
		row := &now.Rows[i]
		c := Change{Scenario: row.Scenario, Load: row.Load, Now: FiguresOf(row)}
		if b := base.Find(row.Scenario, row.Load); b != nil {
			c.Base = FiguresOf(b)
		} else {
			c.Status = "new"
		}
		out = append(out, c)
	}
	for i := range base.Rows {
		row := &base.Rows[i]
		if now.Find(row.Scenario, row.Load) == nil {
			out = append(out, Change{Scenario: row.Scenario, Load: row.Load, Status: "gone", Base: FiguresOf(row)})
		}
	}
	return out
}

// ReadFile reads a report from its JSON file.
func ReadFile(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// WriteComparison writes the changes from base to now as a table, each
// figure as "base -> now (change)", headed by the two runs' revisions,
// dates and load averages (a comparison of runs made at different loads
// measures the machine as much as the code).
func WriteComparison(w io.Writer, base, now *Report) error {
	fmt.Fprintf(w, "Change from %s (%s, load average %.2f) to %s (%s, load average %.2f)\n\n",
		orDash(base.Machine.Revision), base.Started.Format(time.DateTime), base.Machine.LoadAvg,
		orDash(now.Machine.Revision), now.Started.Format(time.DateTime), now.Machine.LoadAvg)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tload\treq/s\tp50\tp99\tCPU s/1k (all)\tallocs/req\tpeak RSS\t")
	for _, c := range Compare(base, now) {
		switch c.Status {
		case "new":
			fmt.Fprintf(tw, "%s\t%s\tnew: %.0f\t%s\t%s\t%.3f\t%.0f\t%.1fMiB\t\n", c.Scenario, c.Load, c.Now.ReqPerSec,
				FormatLatency(c.Now.P50), FormatLatency(c.Now.P99), c.Now.CPUPer1k, c.Now.Allocs, c.Now.PeakRSSMB)
			continue
		case "gone":
			fmt.Fprintf(tw, "%s\t%s\tnot run (was %.0f)\t\t\t\t\t\t\n", c.Scenario, c.Load, c.Base.ReqPerSec)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f -> %.0f (%.2fx)\t%s\t%s\t%s\t%s\t%s\t\n", c.Scenario, c.Load,
			c.Base.ReqPerSec, c.Now.ReqPerSec, c.Throughput(),
			latencyChange(c.Base.P50, c.Now.P50), latencyChange(c.Base.P99, c.Now.P99),
			floatChange(c.Base.CPUPer1k, c.Now.CPUPer1k, "%.3f"), floatChange(c.Base.Allocs, c.Now.Allocs, "%.0f"),
			floatChange(c.Base.PeakRSSMB, c.Now.PeakRSSMB, "%.1f"))
	}
	return tw.Flush()
}

func latencyChange(base, now time.Duration) string {
	return FormatLatency(base) + " -> " + FormatLatency(now) + percent(float64(base), float64(now))
}

func floatChange(base, now float64, format string) string {
	if base == 0 && now == 0 {
		return "-"
	}
	return fmt.Sprintf(format+" -> "+format, base, now) + percent(base, now)
}

// percent is the change from base to now, " (+12%)", or "" without a
// base.
func percent(base, now float64) string {
	if base == 0 {
		return ""
	}
	return fmt.Sprintf(" (%+.0f%%)", (now-base)/base*100)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
