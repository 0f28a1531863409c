// Package replymux receives the replies of one NATS connection's calls for
// one owner, in the pair inboxes of the reply model (docs/security.md,
// "The reply model").
//
// A [Mux] subscribes once, to
//
//	_INBOX_mesh.<owner>.*.<id>.*
//
// where id is a random token of its own, and gives the call it sends to a
// peer the reply subject
//
//	_INBOX_mesh.<owner>.<peer>.<id>.<n>-<nonce>
//
// (wire.PairInbox(owner, peer), then the Mux's id, a counter, and a
// random nonce that keeps the subject a secret of its call). The broker lets only peer publish under wire.PairInbox(owner, peer), and
// the Mux matches a reply to its call by the whole subject, so a message
// that another peer T publishes in its own pair inbox of the owner,
// _INBOX_mesh.<owner>.T.<id>.<n>, never completes the call made to peer S
// with the same n: it is dropped.
//
// [Mux.Request] has the semantics of nats.go's RequestMsgWithContext,
// which it replaces for mesh calls, so wire.FromError classifies its
// errors the same: the context's error when it ends, nats.ErrNoResponders
// for the server's no-responders status, the publish's errors, and
// nats.ErrConnectionClosed when the connection closes under a call. A call
// in flight across a reconnect goes on waiting, as nats.go's does (nats.go
// subscribes the Mux again). [Mux.Close] unsubscribes and fails the calls
// in flight with [ErrClosed]. An error returned before anything was sent
// also wraps [ErrNotSent]. [New] tells a subscription the broker refuses
// ([ErrRefused]) before any call is sent; [Mux.Fail] ends a Mux whose
// subscription the broker refuses later (after a reconnect), with an error
// of the caller's choosing.
//
// Unary calls are the only public kind today. The Mux is built on a
// receiver registered for one reply subject, which a unary call takes off
// at its first message; a streaming call will register one that receives
// many.
package replymux
