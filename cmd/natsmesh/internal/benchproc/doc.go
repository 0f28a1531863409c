// Package benchproc runs and measures the processes of natsmesh bench:
// each component under test (broker, agent, echo service, nginx) a child
// process (Start), killed with its parent (Pdeathsig), its output kept in
// a log file shown when it fails (Proc.Failed), waited for until ready
// (Proc.WaitReady with TCPReady, HTTPReady or LogReady).
//
// It reads what the kernel accounts for any process: CPU time (utime
// plus stime of /proc/<pid>/stat), peak RSS (VmHWM, reset through
// clear_refs), context switches (every thread's, /proc/<pid>/task) and
// read and write system calls (/proc/<pid>/io); and what a Go process
// tells through its /debug/pprof/: its heap allocations so far
// (Proc.Mallocs) and its CPU and allocation profiles over a load
// (Proc.Profile).
package benchproc
