// Package securitytest holds the end-to-end attack tests of issue 16 ("one
// key is one service"): each attack of the issue's probe, replayed from
// outside over TCP with the generated credentials of one service (orders
// of examples/shop/mesh.yaml, and web, clock, gateway, inventory and the
// bridge where they matter), in both account modes (accounts.Generate
// with and without accounts.WithOperator), against a broker running the
// generated configuration, with real agents, the real shop (package
// examples/shop) and real HTTP upstreams. The package has no code of its
// own.
//
//   - TestSelfGrant: a self-delivered message, on every subject a user
//     may both publish and subscribe (accounts.Overlap), grants no reply.
//   - TestDeputyPurge: no responder (the shop's NATS-native clock and its
//     micro discovery, the agents' sibling-status responder, inbound
//     dispatch and discovery) publishes where a caller chose, beyond its
//     own static permissions; TestDirectGetOnCalls: JetStream's direct
//     get, as a deputy, runs no call.
//   - TestSpyQueueGroup: no other queue group, no undeclared subset, no
//     copy of a call.
//   - TestConsumerCreate: no consumer, no JetStream API but the direct
//     get of the bucket, no $SYS.
//   - TestForgedSiblings: what a holder of a service's key can lie about,
//     and what it cannot.
//   - TestFailClosed: no mesh file, no service, on the generated
//     configuration (package agent tests the same on a hand-written one).
//   - TestPairInbox: a callee cannot complete or read a call its caller
//     made to another service.
//   - TestWatchForgedAnswers, TestWatchFlood, TestWatchForgedCues: the
//     policy watch applies the store's file, whatever a service's key has
//     JetStream put under its reply subjects or on the write subject.
//   - TestDiscoveryForgery: a service answers discovery as itself only.
//   - Streams (issue 18), with a raw client speaking docs/wire.md's frames
//     (rawstream_test.go): TestStreamsUnderTheReplyModel,
//     TestStreamInboxesSealed, TestStreamCalleeInboxDeputy,
//     TestStreamReplyDeputy (frames stay in their pair, no deputy);
//     TestStreamCreditEnforced, TestStreamPingFlood, TestStreamSlotsBounded
//     (what a peer can make an agent hold). Demonstrations of defects
//     found by the attack on cc44fa4, failing until fixed, each saying
//     so: TestStreamUncountedFrames, TestGRPCStreamDeclaredLength,
//     TestStreamSilentSlots, TestStreamCallerFaultBlamesService,
//     TestStreamTrailerBounds, TestStreamUpgradeH2C.
//   - Mesh-Confirm (issue 21): TestReviewLiveConfirmKeys, another
//     caller's key cannot start a call made to confirm, and a silent one
//     holds its slot no longer than the callee's StreamIdle.
//   - Instance subjects and the census (decision 181):
//     TestInstanceSubjects, and instance_attack_test.go: authz, rate and
//     concurrency limits, withdrawn and draining instances, deputies,
//     wildcard tokens, census floods and forged IDs, other keys, across
//     accounts, overlaps; TestSilentCallElsewhereAcrossAccounts, the
//     resend to a live instance under the generated configuration. Two
//     defects the attack found on 6c9daeb, fixed since:
//     TestInstanceNoCopy (a service's key took a plain copy of every
//     addressed call: instance subjects are now served in the service's
//     queue group), TestInstanceForgedCensusLoop (a callee's forged
//     census answers made a caller's agent resend one call hundreds of
//     times a second: after no responders the next send goes to the
//     queue group).
//
// Each test fails if its attack works. Each comment says which code it
// fails on (the code before the reply model, 44d1c55, or, for the holes
// found by these tests, the commit before their fix), or that it pins a
// residual the reply model accepts (docs/security.md).
package securitytest
