package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/accounts"
	"github.com/natsmesh/natsmesh/meshstat"
	"github.com/natsmesh/natsmesh/meshstat/dashboard"
)

var uiCommand = command{
	name:    "ui",
	summary: "serve the live service graph dashboard of any mesh",
	run:     runUI,
}

// uiMount is where the dashboard lives on an admin port (and, redirected
// to from /, on natsmesh ui's own).
const uiMount = "/ui/"

// dashboardHandler is the dashboard over nc, for mounting at uiMount.
func dashboardHandler(nc *nats.Conn) (http.Handler, error) {
	h, err := dashboard.Handler(dashboard.Config{Sampler: meshstat.NewSampler(nc, meshstat.GatherOptions{})})
	if err != nil {
		return nil, err
	}
	return http.StripPrefix(uiMount[:len(uiMount)-1], h), nil
}

func runUI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ui", "[flags]",
		"Serves the dashboard, the live service graph with every service's golden\n"+
			"metrics, at http://ADMIN/ui/ for the mesh behind --nats, until SIGINT or\n"+
			"SIGTERM. The edge bridge serves the same page on its admin port (--admin).", stderr)
	listen := fs.String("admin", "127.0.0.1:8090", "admin listener `address` (host:port) serving the dashboard at /ui/")
	as := fs.String("as", accounts.DefaultAdmin, "the `user` whose inbox the answers go to (the mesh's admin user with generated accounts)")
	var nf natsFlags
	nf.register(fs)
	deprecate(fs, "listen", "admin")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("ui: %w", err)
	}
	defer ln.Close()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	nc, err := nf.connect(ctx, *as, "natsmesh-ui", log)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return failure{asCommand("ui", err)}
	}
	defer nc.Close()
	// One gathering first, so an identity the broker refuses discovery
	// fails here with the reason rather than as an empty page.
	ctx, stop := refusals(ctx, nc, *as)
	defer stop()
	if _, err := meshstat.Gather(ctx, nc, meshstat.GatherOptions{Quiet: 100 * time.Millisecond}); err != nil || ctx.Err() != nil {
		return stopped("ui", ctx, err)
	}
	h, err := dashboardHandler(nc)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+uiMount, h)
	mux.Handle("GET /{$}", http.RedirectHandler(uiMount, http.StatusFound))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("natsmesh ui ready", "url", "http://"+ln.Addr().String()+uiMount, "nats", nc.ConnectedUrlRedacted())
	select {
	case err := <-served:
		return failure{fmt.Errorf("ui: %w", err)}
	case <-ctx.Done():
		if err := stopped("ui", ctx, nil); err != nil {
			srv.Close()
			return err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return failure{fmt.Errorf("ui: %w", err)}
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return failure{fmt.Errorf("ui: %w", err)}
	}
	return nil
}
