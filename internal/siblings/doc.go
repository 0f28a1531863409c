// Package siblings is an instance's side of passive health (package
// traffic): the claim of a place to leave its queue groups, the withdrawal
// with its timed return, and counting its siblings, so that no more
// instances of a service leave than the policy allows and the last serving
// instance of a queue group never does.
//
// Siblings are counted through discovery: every instance answers on the
// subject [StatusSubject](service) (a [Member.Answer] handler, which the
// agent's discovery responder, package internal/discovery, subscribes
// outside any queue group), so one request is answered by every instance
// of the service with its [Status]. The request carries the asker's place
// (a [StatusRequest]), and an answering instance notes its time, so that a
// place it claims later comes after it (a Lamport clock; see
// traffic.Place). An instance announces itself at start ([Member.Announce])
// so that every count waits for all the instances it knows of.
//
// Requests and answers stay within the service: a request's reply subject
// is under [StatusInbox](service), the service's pair inbox with itself
// (docs/security.md, "The reply model"), and an instance answers no other
// reply subject, so a request on the status subject cannot make it publish
// anywhere else, even on an open broker.
//
// A [Member] does not hold the queue subscriptions itself: the agent's
// inbound side does, and gives the Member the functions to ask whether it
// serves, to leave and to come back ([Config]). [Member.Instance] is what
// traffic.PassiveHealth needs of it.
package siblings
