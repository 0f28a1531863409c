package wire

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
)

// TestReservedPrefixAlone: a header name that is the reserved prefix and
// nothing more is reserved too.
func TestReservedPrefixAlone(t *testing.T) {
	for _, name := range []string{"Mesh-", "nats-", "NATS-"} {
		if got := EscapeHeaderName(name); got != HeaderEscapedPrefix+name {
			t.Errorf("EscapeHeaderName(%q) = %q, want it escaped", name, got)
		}
		if _, ok := UnescapeHeaderName(name); ok {
			t.Errorf("UnescapeHeaderName(%q): taken for the service's", name)
		}
	}
	for _, name := range []string{"Mesh", "nats", "X-Mesh-"} {
		if got := EscapeHeaderName(name); got != name {
			t.Errorf("EscapeHeaderName(%q) = %q, want it as it is", name, got)
		}
	}
}

// TestCheckPayloadExact: the whole message is counted as nats.go writes it
// ("NATS/1.0\r\n", "key: value\r\n" per value, "\r\n", then the data): a
// message of exactly max_payload passes, one byte more does not; so for
// the service's header values and bytes.
func TestCheckPayloadExact(t *testing.T) {
	m := &nats.Msg{Header: nats.Header{"Ab": {"cde", "f"}}, Data: []byte("0123456789")}
	size := len("NATS/1.0\r\n") + len("Ab: cde\r\n") + len("Ab: f\r\n") + len("\r\n") + len(m.Data)
	if err := (Limits{MaxPayload: int64(size)}).Check(m, 0, 0); err != nil {
		t.Errorf("a message of exactly max_payload (%d bytes): %v", size, err)
	}
	if err := (Limits{MaxPayload: int64(size - 1)}).Check(m, 0, 0); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a message one byte over max_payload: %v, want too-large", err)
	}
	l := Limits{MaxHeaders: 3, MaxHeaderBytes: 100}
	if err := l.Check(m, 3, 100); err != nil {
		t.Errorf("headers at both limits: %v", err)
	}
	if err := l.Check(m, 4, 100); !errors.Is(err, ErrHeadersTooLarge) {
		t.Errorf("one header value over the limit: %v, want headers-too-large", err)
	}
	if err := l.Check(m, 3, 101); !errors.Is(err, ErrHeadersTooLarge) {
		t.Errorf("one header byte over the limit: %v, want headers-too-large", err)
	}
}
