package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

var _ server.Logger = (*logAdapter)(nil)

// logAdapter puts nats-server's printf-style logger onto slog. Fatalf does
// not exit (nats-server's own logger calls os.Exit): it logs at Error and
// hands the error to fatal, so Start and Ready can return it.
type logAdapter struct {
	log   *slog.Logger
	fatal func(error)
}

func (l *logAdapter) logf(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	l.log.Log(ctx, level, fmt.Sprintf(format, v...))
}

func (l *logAdapter) Noticef(format string, v ...any) { l.logf(slog.LevelInfo, format, v) }
func (l *logAdapter) Warnf(format string, v ...any)   { l.logf(slog.LevelWarn, format, v) }
func (l *logAdapter) Errorf(format string, v ...any)  { l.logf(slog.LevelError, format, v) }
func (l *logAdapter) Debugf(format string, v ...any)  { l.logf(slog.LevelDebug, format, v) }
func (l *logAdapter) Tracef(format string, v ...any)  { l.logf(LevelTrace, format, v) }

func (l *logAdapter) Fatalf(format string, v ...any) {
	l.logf(slog.LevelError, format, v)
	l.fatal(fatalErr(format, v))
}

// fatalErr makes an error of a nats-server Fatalf call. Listener failures
// ("Error listening on port: %s, %q" and the like) carry the *net.OpError
// among the arguments; those become "broker: listen ADDR: REASON".
func fatalErr(format string, v []any) error {
	for _, a := range v {
		err, ok := a.(error)
		if !ok {
			continue
		}
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "listen" && oe.Addr != nil {
			return listenErr(oe.Addr.String(), err)
		}
	}
	msg := fmt.Sprintf(format, v...)
	if msg != "" {
		msg = strings.ToLower(msg[:1]) + msg[1:]
	}
	return errors.New("broker: " + msg)
}
