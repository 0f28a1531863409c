package meshstat

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// WriteTable writes r as the table natsmesh stat prints: one line per
// service, under it one per subset (@v1, when it has a named one) and one
// per caller (<- web, when it has more than one), then the edges of the
// service graph, each with the caller's circuit breakers to the callee that
// are not closed ("breakers: open=1"). A dash stands for a value the
// window has no data for.
func WriteTable(w io.Writer, r Report) error {
	instances := 0
	for _, s := range r.Services {
		instances += s.Instances
	}
	at := "-"
	if !r.At.IsZero() {
		at = r.At.UTC().Format(time.RFC3339)
	}
	b := &strings.Builder{}
	fmt.Fprintf(b, "natsmesh stat  at %s  window %.1fs  %s, %s\n", at, r.WindowS,
		plural(len(r.Services), "service"), plural(instances, "instance"))
	for _, p := range r.Problems {
		fmt.Fprintf(b, "  ignored: %s\n", p)
	}

	type row struct {
		name, kind, inst string
		g                Golden
	}
	var rows []row
	for _, s := range r.Services {
		rows = append(rows, row{s.Name, s.Kind, fmt.Sprintf("%d/%d", s.Serving, s.Instances), s.Golden})
		if len(s.Subsets) > 1 || (len(s.Subsets) == 1 && s.Subsets[0].Subset != "") {
			for _, sub := range s.Subsets {
				name := "  @" + sub.Subset
				if sub.Subset == "" {
					name = "  @(none)"
				}
				rows = append(rows, row{name, "", fmt.Sprintf("%d/%d", sub.Serving, sub.Instances), sub.Golden})
			}
		}
		for _, c := range s.Callers {
			if len(s.Callers) == 1 {
				break // the service's own line says it all
			}
			rows = append(rows, row{"  <- " + callerName(c.Caller), "", "", c.Golden})
		}
	}
	nameW := len("SERVICE")
	for _, rw := range rows {
		nameW = max(nameW, len(rw.name))
	}
	fmt.Fprintf(b, "\n%-*s  %-6s  %9s  %8s  %8s  %8s  %8s  %s\n", nameW, "SERVICE", "KIND", "INSTANCES", "RPS", "SUCCESS", "P50", "P99", "MESH ERRORS")
	for _, rw := range rows {
		fmt.Fprintf(b, "%-*s  %-6s  %9s  %s\n", nameW, rw.name, rw.kind, rw.inst, goldenCols(rw.g))
	}

	if len(r.Edges) > 0 {
		edgeW := len("CALLER -> CALLEE")
		names := make([]string, len(r.Edges))
		for i, e := range r.Edges {
			names[i] = e.Caller + " -> " + e.Callee
			edgeW = max(edgeW, len(names[i]))
		}
		fmt.Fprintf(b, "\n%-*s  %-6s  %8s  %8s  %8s  %8s  %s\n", edgeW, "CALLER -> CALLEE", "SEEN", "RPS", "SUCCESS", "P50", "P99", "MESH ERRORS")
		for i, e := range r.Edges {
			line := fmt.Sprintf("%-*s  %-6s  %s", edgeW, names[i], e.Source, goldenCols(e.Golden))
			if len(e.Breakers) > 0 {
				line += "  breakers: " + meshErrors(e.Breakers)
			}
			b.WriteString(line + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func goldenCols(g Golden) string {
	rps, succ := "-", "-"
	if g.Requests > 0 || g.RPS > 0 {
		rps = fmt.Sprintf("%.1f", g.RPS)
	}
	if g.Success != nil {
		succ = FormatPercent(*g.Success)
	}
	return strings.TrimRight(fmt.Sprintf("%8s  %8s  %8s  %8s  %s", rps, succ,
		FormatMS(g.P50MS, g.P50Over), FormatMS(g.P99MS, g.P99Over), meshErrors(g.MeshErrors)), " ")
}

// FormatPercent formats a success ratio as a percentage that never rounds
// up to 100% while some calls failed.
func FormatPercent(ratio float64) string {
	p := ratio * 100
	s := fmt.Sprintf("%.2f%%", p)
	if s == "100.00%" && ratio < 1 {
		s = "99.99%"
	}
	return s
}

// FormatMS formats a latency in milliseconds for a table cell: "0.42ms",
// "4.2ms", "42ms", "1.2s", with ">" when over (above the histogram's last
// bound) and "-" for nil.
func FormatMS(ms *float64, over bool) string {
	if ms == nil {
		return "-"
	}
	v, s := *ms, ""
	switch {
	case v >= 1000:
		s = fmt.Sprintf("%.1fs", v/1000)
	case v >= 10:
		s = fmt.Sprintf("%.0fms", v)
	case v >= 1:
		s = fmt.Sprintf("%.1fms", v)
	default:
		s = fmt.Sprintf("%.2fms", v)
	}
	if over {
		s = ">" + s
	}
	return s
}

func meshErrors(m map[string]uint64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
		}
	}
	return strings.Join(parts, " ")
}

func callerName(c string) string {
	if c == "" {
		return "(outside)"
	}
	return c
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
