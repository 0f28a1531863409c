// Package securitytest holds the end-to-end attack tests of issue 16 ("one
// key is one service"): each attack of the issue's probe, replayed from
// outside over TCP with the generated credentials of one service (orders
// of examples/shop/mesh.yaml, and web, clock, gateway and the bridge where
// they matter), in both account modes (accounts.Generate with and without
// accounts.WithOperator), against a broker running the generated
// configuration, with real agents, the real shop (package
// examples/shop) and real HTTP upstreams.
//
// Each test would have passed for the attacker on the code before the
// reply model of docs/security.md ("The reply model"): it fails if the
// attack works. The package has no code of its own; its tests are the
// regression suite of that model, next to the broker-level probes of
// accounts.TestShopAttacks and the fail-closed tests of package agent.
package securitytest
