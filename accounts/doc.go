// Package accounts generates the NATS authorization of a mesh from who may
// call whom: NATS accounts, one NKey user per service with publish and
// subscribe permissions, an admin user and a system account user.
//
// The input is a [Spec], a plain description of the mesh file's accounts,
// exports and allow lists (policies.File.AccountsSpec converts the mesh file
// into one). [Permissions] computes what each user may publish and subscribe;
// [Generate] writes it into a directory in one of two forms:
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
// The broker enforces subjects, so it enforces identity (the caller token of
// a call subject), who may call which service, the HTTP method or gRPC
// method of a call, and who may read which replies. It cannot see HTTP paths
// (they travel in headers): the receiving agent enforces path rules, and it
// must reply only to the caller's inbox (see docs/security.md).
package accounts
