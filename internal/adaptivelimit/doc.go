// Package adaptivelimit provides the concurrency limit an inbound agent
// puts in front of its local service when the operator has set none: a
// limit that follows the service's latency, so calls are refused at once
// (and retried elsewhere by their callers) instead of queueing at a
// service that is already at its capacity, without anyone knowing that
// capacity, and without refusing anything while the service shows no
// queueing.
//
// A [Limiter] admits a call while fewer than its limit are in flight
// ([Limiter.TryAcquire], a few atomic operations, no allocation) and
// learns from the latency of the calls it admitted ([Limiter.Release]).
// It knows the service's latency when nothing queues there by two
// figures, each averaged over the windows that showed no queue: its
// baseline, a window's least latency, and its typical latency, the
// mean of the calls that ended in a window (not only the window's own
// samples, the calls that came back first). A window's least is held
// against the baseline (and counts as a queue only past its own usual
// straying), a window's mean or a single call against the typical
// latency (a call only past twice the calls' spread): a service
// whose calls vary has a mean well over its least, and read against the
// least its spread looks like a queue (at 10x, a service of 4 calls of
// 70 to 130 ms was held at a limit of 1 and served a quarter of its
// capacity). The limit is in one of two states:
//
//   - Probing, from the first window on (until it ends the limiter knows
//     nothing of the service, and the limit is Max, 1,024) and whenever
//     no call reached the limit for a window: the limit starts at twice
//     the calls in flight in the first window, at least Initial (4), and
//     grows as TCP's slow start does, by a quarter at each round of calls
//     (as many calls as the limit, admitted and come back as fast as
//     ever while the limit held others back); a step's new places are
//     let in once, and again only when as many calls of its round as
//     the limit have come back (the round after a step begins before a
//     call the step queued at the service comes back, and would queue
//     another), and a round of at most 8 calls ends the slow start on
//     one call that queued (a larger one on two), and any round whose
//     every call waited (its least latency past the baseline's band: a
//     fast service's queue, shorter than Slack) ends it too, for a
//     service whose calls take about the same time. A call over the limit
//     waits for a place ([Limiter.MayWait], [Limiter.Wait], last come
//     first served: Facebook's adaptive LIFO) for
//     half the typical latency, at least Slack (50 ms) and at most MaxWait (150
//     ms, under a caller's wait for a sign of life), and only while fewer
//     calls wait than the places that free within that time while the
//     limit grows by a quarter a round (Little's law at the typical
//     latency); the others are refused at once. So a healthy
//     service's burst waits a moment while the limit grows, and the
//     onset of a flood is let in a round at a time. A window that no call
//     reached lowers the limit to twice the most calls in flight, at
//     least Initial: an idle spell leaves no wide limit for a flood.
//   - Limiting, from the first sign of a queue until a window in which
//     no call reached the limit: two calls of a window (and a quarter of
//     it, the window at least Window and the baseline long) each over
//     Tolerance (1.5) times the typical latency and over it by more than
//     Slack and by more than twice the calls' spread (typical over
//     least), or a window whose least latency is over 1.25 times the
//     baseline (every call of it waited behind another) and past its
//     usual straying (at most the spread), or whose mean
//     is over Tolerance times the typical latency and by more than
//     Slack. The limit falls by the latency's rise (at most by half),
//     no call waits any more, and the calls waiting are refused; the
//     limit that showed the queue is the ceiling, as if a probe had
//     found it once. From then on, each window (at least Window, twice
//     the baseline, and two rounds or MinSamples of samples) that held
//     calls back sets the limit by the gradient of Netflix
//     concurrency-limits' Gradient2: limit × typical / mean, plus
//     sqrt(limit)/8 (at least a quarter of a call) of headroom; a mean
//     within 1.1 times the typical latency or 5 ms of it, or within
//     twice the calls' own spread (typical over least) over the root of
//     the window's samples, counts as the typical latency (the
//     service's own variation). At most halved, at most grown by
//     sqrt(limit)/2, a window. The limit settles at the service's
//     concurrency, one more now and then. Where the headroom raises the
//     limit to the ceiling or past it, for a service whose calls take
//     about the same time (its least at least three quarters of its
//     typical latency; a heavy tail probes for a whole window), that is
//     a probe: its new place is let in once, three quarters of a typical call after the rise
//     (the rise comes at a call's end, and a service at its capacity
//     whose calls take about the same time ends them in step: a call let
//     in then waits for what is left of the call ahead, not for nearly a
//     whole one), and a call of its window over the typical latency
//     by twice the spread and 5 ms more (the probe's call, which waited
//     for a place at the service) ends it at once, the limit back to
//     one below the ceiling, so a probe that finds no more capacity
//     costs one call that waited, not one a round for a window; its
//     window lasts three typical calls, until the probe's call is surely
//     back; a probe's window that saw no queue is no proof of more
//     room (its call may have waited too little to show), the next
//     window, every place open, is. Each time a probe finds the queue again, the headroom past
//     the limit below the ceiling is halved (down to a sixteenth), so
//     probes come less and less often; as many calls in flight as once
//     queued, and no queue, restore it. It never opens wide again: when
//     the load falls, it probes up from where it is.
//
// The least latency of a window says a queue where the mean cannot: once
// more calls are let in than the service serves at a time, every call
// waits behind one, while the mean and the tail also rise when the host
// is short of CPU, or a call is slow by itself (TCP Vegas's base and
// actual round-trip times, which Netflix's Vegas limit follows too). A
// window the limit held back while limiting never moves the baseline
// (nor one whose least is over 1.1 times it), so a long overload does
// not teach it that queueing is normal. Shrinks that did
// not shorten the least latency in two windows in a row, with a quarter
// fewer calls in flight, say it is not the queue's (a dependency of the
// service became slow): that latency becomes the baseline, and the
// shrinks are undone.
//
// A window's samples are the calls admitted in it; a call admitted
// before it is no sample, but when the window's own calls are slow to
// come back, the calls in flight and the rate calls end at give the
// latency by Little's law, so a sudden flood is caught before its queue
// has drained.
//
// The dispatch puts only the calls whose request is whole under the
// limit, releases each at its answer's head, and takes a sample only of
// those whose answer is whole too: a stream's life is its client's.
//
// failsafe-go's adaptivelimiter (v0.9.8) was read and measured for this
// and not taken (docs/decisions.md, decisions 110 and 154): it changes
// its limit by log10(limit) a window, a window being at least a second
// and 50 samples, so from its initial 20 it takes a quarter of a minute
// to come down to a service that serves 4 at a time, and its thresholds
// tolerate 3 to 6 queued calls past saturation whatever the capacity
// (fixed multiples of log10(limit)), twice or more the latency of such a
// service; its queueing is bounded by a count (a factor of the limit),
// not by time.
package adaptivelimit
