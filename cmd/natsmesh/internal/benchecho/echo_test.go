package benchecho

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestHTTPEcho: a POST's body comes back whole, of every size the bench
// sends (to 1 MiB); a download is n bytes of the pattern, an upload is
// answered with its length.
func TestHTTPEcho(t *testing.T) {
	srv := httptest.NewServer(bulkHandler(Handler()))
	defer srv.Close()
	for _, n := range []int{0, 1, 1024, 64 << 10, 1 << 20} {
		body := bytes.Repeat([]byte("x"), n)
		resp, err := http.Post(srv.URL+"/echo", "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
			t.Errorf("echo of %d bytes: %s, %d bytes back, %v", n, resp.Status, len(got), err)
		}
	}
	const n = 200_000
	resp, err := http.Get(srv.URL + "/download?n=" + strconv.Itoa(n))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(got) != n || !bytes.Equal(got[:64<<10], bulkPattern()) {
		t.Errorf("download: %d bytes (want %d of the pattern), %v", len(got), n, err)
	}
	resp, err = http.Post(srv.URL+"/upload", "application/octet-stream", NewBulkBody(n))
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != strconv.Itoa(n) {
		t.Errorf("upload answered %q, want %d", got, n)
	}
	resp, err = http.Get(srv.URL + "/download?n=x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("download?n=x: %s, want 400", resp.Status)
	}
}
