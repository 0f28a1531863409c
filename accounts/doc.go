// Package accounts generates the NATS authorization of a mesh from who may
// call whom: NATS accounts, one NKey user per service with publish and
// subscribe permissions, the bridge, an admin user in the policy store's
// account and a system account user.
//
// The input is a [Spec], a plain description of the mesh file's accounts,
// exports and allow lists (policies.File.AccountsSpec converts the mesh file
// into one). [Spec.Users] computes what each user may publish and
// subscribe, and checks it with [CheckUsers]; [Generate] writes it into a
// directory in one of two forms:
//
//   - server-config mode (the default): DIR/nats.conf, a nats-server
//     configuration with accounts and NKey users that a stock nats-server
//     and `natsmesh broker --nats-config` load unchanged, plus one NKey seed file
//     per user (DIR/<user>.nk, mode 0600);
//   - operator mode ([WithOperator]): an operator, account and user JWTs
//     signed with NKeys, DIR/<user>.creds per user, and DIR/nats.conf with a
//     full (directory) account resolver, so that [Revoke] can revoke a user
//     on a running server by pushing the updated account JWT, with no
//     restart.
//
// Keys are made once and kept: running Generate again over the same
// directory keeps every existing key unless [WithRotate] names the user.
//
// The configuration implements the reply model of docs/security.md: no
// user has response permissions, so every message any user publishes is
// checked against its static permissions. Every reply subject names both
// ends (_INBOX_mesh.<owner>.<peer>.…, wire.PairInbox): only the owner
// subscribes it and only the peer may publish there, and a service is the
// peer of exactly the callers and callees it is connected to. The policies
// bucket lives in [StoreAccount], the only account with JetStream, which
// every service account reads through exports (the stream of the bucket's
// messages and the direct get of a key) and nothing else of JetStream.
// Calls cross accounts as stream exports in both directions, with their
// reply subjects unchanged.
//
// The broker enforces subjects, so it enforces identity (the caller token of
// a call subject), who may call which service, the HTTP method or gRPC
// method of a call, who may read which replies and who may answer them. It
// cannot see HTTP paths (they travel in headers): the receiving agent
// enforces path rules.
package accounts
