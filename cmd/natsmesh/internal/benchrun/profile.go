package benchrun

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/benchproc"
)

// profile starts the profiles of one load (Options.Profile): those of
// every process in procs that serves them (benchproc.Proc.Profile), and
// this process's CPU profile with its allocations before and after (go
// tool pprof -sample_index alloc_objects -base before after). Files are
// named DIR/<scenario>_<load>_<component>.{cpu,allocs}.pprof. The
// returned function ends this process's profile and waits for the
// others.
func (e *env) profile(ctx context.Context, scenario, load string, procs []*benchproc.Proc, d time.Duration) func() error {
	base := filepath.Join(e.opts.Profile, scenario+"_"+strings.ReplaceAll(strings.ReplaceAll(load, " ", ""), "/", "per"))
	errs := make(chan error, len(procs))
	waiting := 0
	for _, p := range procs {
		if p.Pprof != "" {
			waiting++
			go func() { errs <- p.Profile(ctx, d, base+"_"+p.Name) }()
		}
	}
	writeAllocs := func(path string) error {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		return errors.Join(pprof.Lookup("allocs").WriteTo(f, 0), f.Close())
	}
	selfErr := writeAllocs(base + "_client.allocs-before.pprof")
	cpu, err := os.Create(base + "_client.cpu.pprof")
	if err == nil {
		if err = pprof.StartCPUProfile(cpu); err != nil {
			cpu.Close()
			cpu = nil
		}
	}
	selfErr = errors.Join(selfErr, err)
	return func() error {
		if cpu != nil {
			pprof.StopCPUProfile()
			selfErr = errors.Join(selfErr, cpu.Close())
		}
		all := []error{selfErr, writeAllocs(base + "_client.allocs.pprof")}
		for range waiting {
			all = append(all, <-errs)
		}
		return errors.Join(all...)
	}
}

// profPort returns, when the run takes profiles, the broker flags that
// serve nats-server's profiles (its prof_port, through a configuration
// file) and their address; none otherwise.
func (e *env) profPort(name string) (args []string, addr string, err error) {
	if e.opts.Profile == "" {
		return nil, "", nil
	}
	if addr, err = benchproc.FreeAddr(); err != nil {
		return nil, "", err
	}
	_, port, _ := strings.Cut(addr, ":")
	path := filepath.Join(e.dir, name+"-prof.conf")
	if err := os.WriteFile(path, []byte("prof_port: "+port+"\n"), 0o644); err != nil {
		return nil, "", err
	}
	return []string{"--nats-config", path}, addr, nil
}
