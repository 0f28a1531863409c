package meshgrpc

// The interop cases, for the tests of the external package (meshgrpc_test)
// that run them through agents.
var (
	RunInterop   = runInterop
	ListServices = listServices
)
