package agent

import "github.com/natsmesh/natsmesh/meshgrpc"

// grpcProxy is the agent's gRPC proxy: its outbound pipeline, its service
// as the caller, its domains and limits. A nil resolve routes each call by
// its :authority; a bind port's names its one destination.
func (a *Agent) grpcProxy(resolve func(authority string) (service, subset string, err error)) *meshgrpc.Proxy {
	return &meshgrpc.Proxy{Sender: a.send, Caller: a.cfg.Service, Limits: a.limitsNow, Domains: a.cfg.Domains, Resolve: resolve}
}
