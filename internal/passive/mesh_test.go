package passive_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/natsmesh/natsmesh/internal/agenttest"
)

// The agents of the end-to-end tests, on a broker of their own, apply a
// mesh file (agenttest.Mesh, as in package traffic's tests); what follows
// is what only passive health's need.

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// logSink collects log lines, for asserting on decisions.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func (s *logSink) has(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Contains(s.buf.String(), sub)
}

// flaky answers 500 while failing is set, and counts its calls.
func flaky(name string, c *agenttest.Counter, failing *atomic.Bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.Add(name)
		if failing.Load() {
			http.Error(w, name+" failing", http.StatusInternalServerError)
			return
		}
		w.Write([]byte(name))
	})
}
