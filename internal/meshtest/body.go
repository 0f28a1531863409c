package meshtest

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"testing"
)

// Body is n bytes that seed always makes the same, as a reader: a large
// body to send and check by its digest without holding it.
func Body(seed byte, n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{seed}), n)
}

// Digest is the SHA-256 (hex) of what r reads, and how much it read; a
// read error fails the test.
func Digest(t testing.TB, r io.Reader) (string, int64) {
	t.Helper()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		t.Fatalf("after %d bytes: %v", n, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}
