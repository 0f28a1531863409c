package meshgrpc

import (
	"fmt"
	"io"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc/grpclog"
)

// TestMain fails the package's tests if any goroutine (a proxy's receive,
// a server's handler, a stream's pump) outlives them. gRPC's log is
// silenced, and its fatal log, which grpc-go's interop cases fail with,
// panics with interopFatal instead of exiting, so that runInterop fails
// the case's test.
func TestMain(m *testing.M) {
	grpclog.SetLoggerV2(fatalPanics{grpclog.NewLoggerV2(io.Discard, io.Discard, io.Discard)})
	goleak.VerifyTestMain(m)
}

// fatalPanics is a gRPC logger whose fatal log panics.
type fatalPanics struct{ grpclog.LoggerV2 }

func (fatalPanics) Fatal(args ...any)   { panic(interopFatal(fmt.Sprint(args...))) }
func (fatalPanics) Fatalln(args ...any) { panic(interopFatal(fmt.Sprint(args...))) }
func (fatalPanics) Fatalf(format string, args ...any) {
	panic(interopFatal(fmt.Sprintf(format, args...)))
}
