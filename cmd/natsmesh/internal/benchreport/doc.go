// Package benchreport is the result of a natsmesh bench run: the Report
// (one Row per scenario and load, each process's CPU, peak RSS and
// allocations per call, the targets judged), its text tables
// (Report.WriteTable) and its JSON form, which is the recorded results
// file; and the comparison of two runs (Compare, WriteComparison): each
// scenario and load of one run beside the same in an earlier one, with
// its change in throughput, p50, p99, CPU per call, allocations and peak
// RSS.
//
// It knows nothing of how the figures were measured: internal/benchrun
// runs the scenarios and fills a Report.
package benchreport
