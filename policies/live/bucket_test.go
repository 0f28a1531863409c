package live_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
)

// TestWatchBucketLater starts watching before the bucket exists: the
// source holds no file until one is applied (which the watch hears of, so
// with no poll to speak of), then that file.
func TestWatchBucketLater(t *testing.T) {
	b := meshtest.Broker(t)
	nc := meshtest.Conn(t, b)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	src := live.WatchBucket(nc, live.SourceConfig{Poll: time.Hour})
	defer src.Close()
	if f, rev := src.Current(); f != nil || rev != 0 {
		t.Fatalf("before the bucket exists: %v at %d, want none", f, rev)
	}
	serve := func(query string) live.ConfigResponse {
		rec := httptest.NewRecorder()
		live.Handler(src).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/config"+query, nil))
		var c struct {
			Revision uint64
			Builtin  bool
		}
		json.Unmarshal(rec.Body.Bytes(), &c)
		return live.ConfigResponse{Revision: c.Revision, Builtin: c.Builtin}
	}
	if c := serve(""); !c.Builtin || c.Revision != 0 {
		t.Errorf("GET /config before any file: %+v, want the built-in policy", c)
	}

	ctx := context.Background()
	store, err := live.OpenStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	f, err := policies.Parse("mesh.yaml", []byte("version: 1\nservices:\n  orders: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	rev, err := store.Apply(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	meshtest.CheckFor(t, time.Second, 5*time.Millisecond, func() error {
		if _, got := src.Current(); got != rev {
			return errorf("at revision %d, want %d", got, rev)
		}
		return nil
	})
	if c := serve(""); c.Builtin || c.Revision != rev {
		t.Errorf("GET /config = %+v, want revision %d", c, rev)
	}
	rec := httptest.NewRecorder()
	live.Handler(src).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/config?service=nobody", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /config?service=nobody = %d, want 404", rec.Code)
	}
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
