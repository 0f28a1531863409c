package meshtest

import (
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBrokerConnCheckFor(t *testing.T) {
	b := Broker(t)
	nc := Conn(t, b)
	if !nc.IsConnected() {
		t.Fatal("not connected")
	}
	n := 0
	CheckFor(t, time.Second, time.Millisecond, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
}
