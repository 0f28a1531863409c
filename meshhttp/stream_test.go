package meshhttp

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/internal/httpguard"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// transferSize is the size of the large uploads and downloads: 64 MiB, 64
// times the broker's default max_payload.
const transferSize = 64 << 20

// TestStreamLargeBodies: issue 18. A 64 MiB upload and a 64 MiB download,
// of known and of unknown length, cross between a client and a service,
// to an HTTP service on the network and to an in-process handler, bytes
// checked by digest.
func TestStreamLargeBodies(t *testing.T) {
	size := int64(transferSize)
	if testing.Short() {
		size = 4 << 20
	}
	want, _ := meshtest.Digest(t, meshtest.Body(7, size))
	service := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/upload":
			h := sha256.New()
			n, err := io.Copy(h, r.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			fmt.Fprintf(w, "%x %d %d", h.Sum(nil), n, r.ContentLength)
		case "/download":
			if r.URL.RawQuery == "sized" {
				w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
			}
			io.Copy(w, meshtest.Body(7, size))
		}
	})
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			mp := newMeshPair(t, service, kind)
			for _, sized := range []bool{true, false} {
				t.Run(fmt.Sprintf("upload sized=%v", sized), func(t *testing.T) {
					body := meshtest.Body(7, size)
					if !sized {
						body = io.MultiReader(body) // a length not known: chunked
					}
					r, _ := http.NewRequest("POST", mp.url+"/upload", body)
					if sized {
						r.ContentLength = size
					}
					resp, err := http.DefaultClient.Do(r)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					got, _ := io.ReadAll(resp.Body)
					wantLen := size
					if !sized {
						wantLen = -1
					}
					if resp.StatusCode != 200 || string(got) != fmt.Sprintf("%s %d %d", want, size, wantLen) {
						t.Fatalf("got %d %q, want digest %s of %d bytes", resp.StatusCode, got, want, size)
					}
				})
				t.Run(fmt.Sprintf("download sized=%v", sized), func(t *testing.T) {
					target := mp.url + "/download"
					if sized {
						target += "?sized"
					}
					resp, err := http.Get(target)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					wantLen := size
					if !sized {
						wantLen = -1
					}
					if resp.StatusCode != 200 || resp.ContentLength != wantLen {
						t.Fatalf("got %d, length %d, want 200 and %d", resp.StatusCode, resp.ContentLength, wantLen)
					}
					if got, n := meshtest.Digest(t, resp.Body); got != want || n != size {
						t.Fatalf("got %d bytes, digest %s, want %d, %s", n, got, size, want)
					}
				})
			}
		})
	}
}

// TestStreamChunkedAnswer: issue 18. A chunked answer reaches the client
// piece by piece: the client reads the first part before the service
// writes the second.
func TestStreamChunkedAnswer(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			next := make(chan struct{})
			service := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "first\n")
				w.(http.Flusher).Flush()
				select {
				case <-next:
				case <-r.Context().Done():
					return
				}
				io.WriteString(w, "second\n")
			})
			mp := newMeshPair(t, service, kind)
			resp, err := http.Get(mp.url + "/")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			line, err := br.ReadString('\n')
			if err != nil || line != "first\n" {
				t.Fatalf("first line %q, %v", line, err)
			}
			close(next)
			rest, err := io.ReadAll(br)
			if err != nil || string(rest) != "second\n" || resp.ContentLength != -1 {
				t.Fatalf("then %q, %v (length %d)", rest, err, resp.ContentLength)
			}
		})
	}
}

// sseService sends an event whenever it is told on events (each told the
// time it was sent on sent), then waits for its client to go, telling
// gone.
type sseService struct {
	events chan string
	sent   chan time.Time
	gone   chan struct{}
}

func newSSEService() *sseService {
	return &sseService{events: make(chan string), sent: make(chan time.Time, 100), gone: make(chan struct{}, 1)}
}

func (s *sseService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() { s.gone <- struct{}{} }()
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(200)
	w.(http.Flusher).Flush()
	for {
		select {
		case ev := <-s.events:
			s.sent <- time.Now()
			fmt.Fprintf(w, "data: %s\n\n", ev)
			w.(http.Flusher).Flush()
		case <-r.Context().Done():
			return
		}
	}
}

// readEvent reads the next event's data from br.
func readEvent(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("reading an event: %v", err)
	}
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatalf("reading an event's end: %v", err)
	}
	return strings.TrimSuffix(strings.TrimPrefix(line, "data: "), "\n")
}

// TestStreamSSE: issue 18. Server-sent events reach the client as the
// service sends them: the first within 50 ms of its sending, measured;
// when the client goes, the service's request ends.
func TestStreamSSE(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			svc := newSSEService()
			mp := newMeshPair(t, svc, kind)
			resp, err := http.Get(mp.url + "/events")
			if err != nil {
				t.Fatal(err)
			}
			if resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
			}
			br := bufio.NewReader(resp.Body)
			for i := range 3 {
				svc.events <- fmt.Sprint("event ", i)
				sent := <-svc.sent
				ev := readEvent(t, br)
				took := time.Since(sent)
				if ev != fmt.Sprint("event ", i) {
					t.Fatalf("got %q", ev)
				}
				t.Logf("event %d reached the client %v after the service sent it", i, took)
				if took > 50*time.Millisecond {
					t.Errorf("event %d took %v, want under 50ms", i, took)
				}
			}
			resp.Body.Close()
			select {
			case <-svc.gone:
			case <-time.After(5 * time.Second):
				t.Fatal("the service's request went on after its client left")
			}
		})
	}
}

// TestStreamOutlivesDefaultTimeout: issue 18. An endless event stream
// stays open past the outbound pipeline's default deadline, which bounds
// only the wait for the answer's head (here 200ms).
func TestStreamOutlivesDefaultTimeout(t *testing.T) {
	b := meshtest.BareBroker(t)
	nc := meshtest.Conn(t, b)
	const unary = 200 * time.Millisecond
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			svc := newSSEService()
			mp := newMeshPair(t, svc, kind)
			callee := mp.proxy.Sender
			out, err := pipeline.NewOutbound(nc, pipeline.OutboundConfig{Timeout: unary,
				Middleware: []pipeline.OutboundMiddleware{func(pipeline.Sender) pipeline.Sender { return callee }}})
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			mp.proxy.Sender = out
			resp, err := http.Get(mp.url + "/events")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			start := time.Now()
			for i := 0; time.Since(start) < 4*unary; i++ {
				svc.events <- fmt.Sprint(i)
				<-svc.sent
				if ev := readEvent(t, br); ev != fmt.Sprint(i) {
					t.Fatalf("got %q", ev)
				}
				time.Sleep(unary / 4)
			}
			resp.Body.Close()
			<-svc.gone
		})
	}
}

// TestStreamTrailers: issue 18. Trailers cross at the end of streamed
// bodies, both ways: the client's request trailers reach the service,
// and the service's answer trailers (declared, and set after the body)
// reach the client.
func TestStreamTrailers(t *testing.T) {
	service := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Sum")
		w.Header().Set("X-Req-Trailer", r.Trailer.Get("X-Req"))
		w.WriteHeader(200)
		w.Write(body)
		w.(http.Flusher).Flush()
		w.Write(body)
		w.Header().Set("X-Sum", strconv.Itoa(2*len(body)))
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
	})
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			mp := newMeshPair(t, service, kind)
			r, _ := http.NewRequest("POST", mp.url+"/", io.MultiReader(strings.NewReader("abc")))
			r.Trailer = http.Header{"X-Req": {"req-value"}}
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil || string(body) != "abcabc" {
				t.Fatalf("body %q, %v", body, err)
			}
			if got := resp.Header.Get("X-Req-Trailer"); got != "req-value" {
				t.Errorf("the service saw request trailer %q", got)
			}
			if resp.Trailer.Get("X-Sum") != "6" || resp.Trailer.Get("X-Late") != "late" {
				t.Errorf("trailers %v, want X-Sum 6 and X-Late late", resp.Trailer)
			}
		})
	}
}

// TestStreamClientGoes: issue 18. A client that goes away in the middle
// of an endless download ends the service's request: the stream is
// cancelled end to end.
func TestStreamClientGoes(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			gone := make(chan struct{})
			service := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				defer close(gone)
				chunk := bytes.Repeat([]byte("x"), 16<<10)
				for r.Context().Err() == nil {
					if _, err := w.Write(chunk); err != nil {
						return
					}
				}
			})
			mp := newMeshPair(t, service, kind)
			resp, err := http.Get(mp.url + "/")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(resp.Body, make([]byte, 1<<20)); err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			select {
			case <-gone:
			case <-time.After(5 * time.Second):
				t.Fatal("the service kept writing after its client left")
			}
		})
	}
}

// TestStreamCutMidway: issue 18. A stream that fails midway (the
// service's connection breaks) cuts the client's answer: it never reads
// as complete.
func TestStreamCutMidway(t *testing.T) {
	service := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("x"), 100<<10))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			mp := newMeshPair(t, service, kind)
			resp, err := http.Get(mp.url + "/")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			n, err := io.Copy(io.Discard, resp.Body)
			if err == nil {
				t.Fatalf("read %d bytes and a clean end, want an error", n)
			}
			t.Logf("read %d bytes, then %v", n, err)
		})
	}
}

// TestTransportStreams: issue 18. The in-process Transport gives a
// streamed answer as its response body, read as it arrives.
func TestTransportStreams(t *testing.T) {
	svc := newSSEService()
	mp := newMeshPair(t, svc, "upstream")
	client := &http.Client{Transport: &Transport{Sender: mp.proxy.Sender, Caller: "web"}}
	resp, err := client.Get("http://orders/events")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		svc.events <- fmt.Sprint(i)
		<-svc.sent
		if ev := readEvent(t, br); ev != fmt.Sprint(i) {
			t.Fatalf("got %q", ev)
		}
	}
	resp.Body.Close()
	<-svc.gone
	// An upload of unknown length, streamed.
	up := newMeshPair(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, n)
	}), "handler")
	client = &http.Client{Transport: &Transport{Sender: up.proxy.Sender, Caller: "web"}}
	resp, err = client.Post("http://orders/", "application/octet-stream", io.MultiReader(meshtest.Body(1, 3<<20)))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != fmt.Sprint(3<<20) {
		t.Fatalf("the service read %s bytes", got)
	}
}

// TestWholeBodyTooLarge: issue 18. A body that must cross whole (to a
// NATS-native endpoint) over max_payload is refused with too-large,
// saying how to raise the limit.
func TestWholeBodyTooLarge(t *testing.T) {
	p := &Proxy{Sender: &recording{}, Caller: "web", Limits: func() wire.Limits { return wire.Limits{MaxPayload: 1000} },
		Resolve: func(*http.Request) (pipeline.Call, error) { return pipeline.Call{Subject: "svc.echo"}, nil }}
	for _, body := range []io.Reader{strings.NewReader(strings.Repeat("x", 2000)), io.MultiReader(strings.NewReader(strings.Repeat("x", 2000)))} {
		w, _ := serve(p, httpNewRequest("POST", "http://x/", body))
		wantMeshError(t, w, 413, wire.KindTooLarge)
		if !strings.Contains(w.Body.String(), "natsmesh broker --max-payload") {
			t.Errorf("message %q does not say how to raise the limit", w.Body.String())
		}
	}
}

// httpNewRequest is a server-side request with body, as a server hands
// it to a handler: of unknown length unless body is a *strings.Reader.
func httpNewRequest(method, target string, body io.Reader) *http.Request {
	r, _ := http.NewRequest(method, target, body)
	if _, ok := body.(*strings.Reader); !ok {
		r.ContentLength = -1
	}
	return r
}

// TestStreamOutlivesServerTimeouts: issue 18. A Proxy served with a
// ReadTimeout and a WriteTimeout (as the edge gateway is) carries a
// streamed upload and a streamed answer that both last longer than
// either: the server's timeouts bound a whole request, each piece of a
// stream is bounded by the body timeout (between the client's bytes) and
// StreamWriteTimeout (each write to the client) instead.
func TestStreamOutlivesServerTimeouts(t *testing.T) {
	const serverTimeout = 300 * time.Millisecond
	svc := newSSEService()
	mux := http.NewServeMux()
	mux.Handle("/events", svc)
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, n, err)
	})
	mp := newMeshPair(t, mux, "upstream")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: httpguard.Handler(mp.proxy, httpguard.Options{}), ConnContext: httpguard.ConnContext,
		ReadTimeout: serverTimeout, WriteTimeout: serverTimeout}
	go srv.Serve(httpguard.Listen(l))
	defer srv.Close()
	base := "http://" + l.Addr().String()

	t.Run("answer", func(t *testing.T) {
		resp, err := http.Get(base + "/events")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		for start, i := time.Now(), 0; time.Since(start) < 4*serverTimeout; i++ {
			svc.events <- fmt.Sprint(i)
			<-svc.sent
			if ev := readEvent(t, br); ev != fmt.Sprint(i) {
				t.Fatalf("got %q", ev)
			}
			time.Sleep(serverTimeout / 4)
		}
		resp.Body.Close()
		<-svc.gone
	})
	t.Run("upload", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			for range 12 {
				pw.Write([]byte("0123456789"))
				time.Sleep(serverTimeout / 3)
			}
			pw.Close()
		}()
		resp, err := http.Post(base+"/upload", "text/plain", pr)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(got) != "120 <nil>" {
			t.Fatalf("got %d %q", resp.StatusCode, got)
		}
	})
}

// TestStreamFullDuplex: issue 18. A service that answers as it reads (an
// echo, line by line) gets each line of a client's streamed body while
// its answer streams back: the client reads each echo before it sends the
// next line.
func TestStreamFullDuplex(t *testing.T) {
	service := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).EnableFullDuplex()
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		br := bufio.NewReader(r.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			io.WriteString(w, "echo "+line)
			w.(http.Flusher).Flush()
		}
	})
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			mp := newMeshPair(t, service, kind)
			pr, pw := io.Pipe()
			defer pw.Close()
			r, _ := http.NewRequest("POST", mp.url+"/", pr)
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			for i := range 20 {
				fmt.Fprintf(pw, "line %d\n", i)
				got, err := br.ReadString('\n')
				if err != nil || got != fmt.Sprintf("echo line %d\n", i) {
					t.Fatalf("line %d: %q, %v", i, got, err)
				}
			}
			pw.Close()
			if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
				t.Fatalf("after the body's end: %q, %v", rest, err)
			}
		})
	}
}
