// Package census tells a caller which instances of a service are live
// now, so that a call no instance took within the caller's take bound is
// sent again to an instance that answers, not to the queue group, which
// picks at random and can draw the silent instance again and again until
// the broker drops it (docs/wire.md, "Liveness"; docs/decisions.md 181).
//
// Both sides are here:
//
//   - The callee's, [Responder]: every instance of a service answers on
//     [Subject](service, "*") (outside any queue group) with its
//     [Answer]: its instance ID, subset, and whether a call may be
//     addressed to it now (it holds its queue groups and its instance
//     subject, wire.InstanceSubject). The caller is the subject's last
//     token, which the broker's permissions let only that caller's user
//     publish, and the answer goes only to a reply subject in the pair
//     inbox of that caller and the service (wire.PairInbox(caller,
//     service)), as a call's reply does: a census request cannot make an
//     instance publish anywhere else.
//   - The caller's, [Census]: [Census.Pick] returns a live instance of a
//     service (of a subset, when the call names one) that no earlier
//     instance-addressed send found silent ([Census.Suspect]), from a
//     census at most MaxAge old, taking a new one when needed: one request,
//     answered by every live instance, whose answers are gathered for a
//     moment after the first that fits. Concurrent picks share one census.
//
// A census costs nothing on a call's path: it is taken only after a
// silence. An instance that does not answer (frozen, cut off, gone, or an
// agent older than this protocol) is not offered; with none offered the
// caller sends to the queue group as before.
package census
