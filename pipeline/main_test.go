package pipeline

import (
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/httpwire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("time.Sleep"))
}

// rawConn connects to b as a raw NATS client of caller that calls
// service: nats.go's inboxes are in their pair inbox, the reply subjects
// an agent of service answers.
func rawConn(t testing.TB, b *broker.Broker, caller, service string) *nats.Conn {
	t.Helper()
	return meshtest.Conn(t, b, nats.CustomInboxPrefix(wire.PairInbox(caller, service)), nats.Timeout(5*time.Second))
}

// httpReply is the Reply of httpwire.ResponseMsg's message.
func httpReply(status int, h http.Header, body []byte, trailer http.Header, lim wire.Limits) (*Reply, error) {
	m, err := httpwire.ResponseMsg(status, h, body, trailer, lim)
	if err != nil {
		return nil, err
	}
	return ReplyFromMsg(wire.ProtoHTTP, m), nil
}
