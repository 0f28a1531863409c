package pipeline_test

import (
	"context"
	"testing"

	"github.com/natsmesh/natsmesh/pipeline"
)

// TestAttemptRoundTrip: an attempt reads back as it was set, small or
// large, hedge or not; a context without one has none.
func TestAttemptRoundTrip(t *testing.T) {
	if _, ok := pipeline.AttemptFrom(context.Background()); ok {
		t.Fatal("attempt on a bare context")
	}
	for _, a := range []pipeline.Attempt{{Number: 1}, {Number: 2, Hedge: true}, {Number: 127}, {Number: 128, Hedge: true}, {Number: 1 << 20}} {
		got, ok := pipeline.AttemptFrom(pipeline.WithAttempt(context.Background(), a))
		if !ok || got != a {
			t.Errorf("set %+v, read %+v (%v)", a, got, ok)
		}
	}
}
