package benchproc

import (
	"testing"
	"time"
)

func TestProcAccountingOfSelf(t *testing.T) {
	before, err := CPUTime("self")
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until the clock-tick counter moves (a 10 ms tick), for at
	// most 5s: an accounting that never moves fails.
	var after time.Duration
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		for x := 0; x < 1e6; x++ {
			_ = x * x
		}
		if after, err = CPUTime("self"); err != nil {
			t.Fatal(err)
		}
		if after > before {
			break
		}
	}
	if after <= before {
		t.Errorf("CPU time did not grow while burning CPU: %v then %v", before, after)
	}
	rss, err := PeakRSS("self")
	if err != nil || rss <= 0 {
		t.Errorf("peak RSS %d, %v", rss, err)
	}
	if _, err := CPUTime("0"); err == nil {
		t.Error("no error for a missing process")
	}
}

// TestCountersOfSelf reads this process's context switches and read and
// write system calls, which grow as it sleeps and reads a file.
func TestCountersOfSelf(t *testing.T) {
	if _, err := ContextSwitches("0"); err == nil {
		t.Error("no error for a missing process")
	}
	if _, err := RWSyscalls("0"); err == nil {
		t.Error("no error for a missing process")
	}
	cs0, err := ContextSwitches("self")
	if err != nil || cs0 <= 0 {
		t.Fatalf("context switches %d, %v", cs0, err)
	}
	rw0, err := RWSyscalls("self")
	if err != nil || rw0 <= 0 {
		t.Fatalf("read/write syscalls %d, %v", rw0, err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(time.Millisecond) // a voluntary switch, most of the time
		if _, err := RWSyscalls("self"); err != nil {
			t.Fatal(err)
		}
		cs, _ := ContextSwitches("self")
		rw, _ := RWSyscalls("self")
		if cs > cs0 && rw > rw0 {
			return
		}
	}
	t.Errorf("counters did not grow: context switches %d, read/write syscalls %d", cs0, rw0)
}
