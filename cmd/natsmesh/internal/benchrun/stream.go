package benchrun

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/benchecho"
	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/loadgen"
	"github.com/natsmesh/natsmesh/wire"
)

// The streaming scenarios (issue 18): each through the sidecar pair beside
// its direct twin, the two measured together (pairs) so that their ratio
// is of one moment of the machine. One call of a streaming scenario is a
// whole stream: a gRPC server stream of Options.StreamMessages messages,
// or a download or an upload of Options.Transfer bytes.

// streamTwins maps each streaming scenario through the sidecar pair to its
// direct twin.
var streamTwins = map[string]string{
	SidecarGRPCStream: DirectGRPCStream,
	SidecarDownload:   DirectDownload,
	SidecarUpload:     DirectUpload,
}

// streaming reports whether scenario is a streaming one, and its twin
// (itself for a direct one).
func streaming(scenario string) (twin string, ok bool) {
	if d, ok := streamTwins[scenario]; ok {
		return d, true
	}
	for _, d := range streamTwins {
		if d == scenario {
			return d, true
		}
	}
	return "", false
}

// bulkTarget downloads or uploads (upload) e.opts.Transfer bytes at base
// (the echo's URL, direct or through proxy), one transfer per call.
func (e *env) bulkTarget(base string, proxy func(*http.Request) (*url.URL, error), upload bool) func(int) (loadgen.Target, func(), error) {
	return func(conns int) (loadgen.Target, func(), error) {
		tr := &http.Transport{
			Proxy:               proxy,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
			// Buffers of the size bulk clients use, alike direct and
			// through the sidecar.
			WriteBufferSize: 64 << 10,
			ReadBufferSize:  64 << 10,
		}
		client := &http.Client{Transport: tr}
		size := e.opts.Transfer
		call := func(ctx context.Context) error {
			var req *http.Request
			var err error
			if upload {
				req, err = http.NewRequestWithContext(ctx, http.MethodPost, base+"/upload", benchecho.NewBulkBody(size))
				req.ContentLength = size
			} else {
				req, err = http.NewRequestWithContext(ctx, http.MethodGet, base+"/download?n="+strconv.FormatInt(size, 10), nil)
			}
			if err != nil {
				return err
			}
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %s (%s)", resp.Status, resp.Header.Get(wire.HeaderError))
			}
			if upload {
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					return err
				}
				if string(b) != strconv.FormatInt(size, 10) {
					return fmt.Errorf("upload of %d bytes: the echo read %q", size, b)
				}
				return nil
			}
			n, err := io.CopyBuffer(io.Discard, resp.Body, make([]byte, 64<<10))
			if err != nil {
				return err
			}
			if n != size {
				return fmt.Errorf("download of %d bytes came with %d", size, n)
			}
			return nil
		}
		return call, tr.CloseIdleConnections, nil
	}
}

// grpcStreamTarget calls TestService.StreamingOutputCall at addr, with
// authority when set: one server stream of e.opts.StreamMessages
// messages of e.opts.Size bytes per call, the callers sharing one HTTP/2
// connection.
func (e *env) grpcStreamTarget(addr, authority string) func(int) (loadgen.Target, func(), error) {
	params := make([]*testpb.ResponseParameters, e.opts.StreamMessages)
	for i := range params {
		params[i] = &testpb.ResponseParameters{Size: int32(e.opts.Size)}
	}
	req := &testpb.StreamingOutputCallRequest{ResponseParameters: params}
	return func(int) (loadgen.Target, func(), error) {
		opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		if authority != "" {
			opts = append(opts, grpc.WithAuthority(authority))
		}
		cc, err := grpc.NewClient("passthrough:///"+addr, opts...)
		if err != nil {
			return nil, nil, err
		}
		c := testpb.NewTestServiceClient(cc)
		call := func(ctx context.Context) error {
			stream, err := c.StreamingOutputCall(ctx, req)
			if err != nil {
				return err
			}
			n := 0
			for {
				resp, err := stream.Recv()
				if err == io.EOF {
					break
				}
				if err != nil {
					return fmt.Errorf("after %d messages: %w", n, err)
				}
				if len(resp.GetPayload().GetBody()) != e.opts.Size {
					return fmt.Errorf("message %d: %d bytes, want %d", n, len(resp.GetPayload().GetBody()), e.opts.Size)
				}
				n++
			}
			if n != e.opts.StreamMessages {
				return fmt.Errorf("a stream of %d messages ended after %d", e.opts.StreamMessages, n)
			}
			return nil
		}
		return call, func() { cc.Close() }, nil
	}
}
