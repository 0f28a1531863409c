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
// Once per window of samples (at least Window, twice the baseline
// latency, and MinSamples calls admitted in the window) it compares the
// window's mean latency with the service's baseline, its mean latency
// while nothing queued:
//
//   - Open, while no window has shown queueing: the limit is four times
//     the most calls in flight in the last window, at least Burst (64),
//     and a call over it waits for a place ([Limiter.Wait], first come
//     first served, up to MaxWait, 150 ms, under a caller's wait for a
//     sign of life) instead of being refused: a
//     healthy service's burst waits a moment while the limit grows (four
//     times a window), and a flood queues at the service no more than
//     the limit. Each window's mean within 1.25 times the baseline moves
//     the baseline (an exponential average); a longer one may be a queue
//     forming.
//   - A window whose mean is over Tolerance (1.5) times the baseline,
//     and over it by more than Slack (50 ms, so that a fast service's
//     jitter, or a process starved of CPU for a moment, is no queue),
//     says calls queue at the service: the limit shrinks to limit ×
//     baseline / mean (by at most 8 times a window, from the calls in
//     flight when it was open), which lands it near the concurrency the
//     service serves without queueing, as a gradient limiter does
//     (Netflix concurrency-limits' Gradient2), and it is limiting: the
//     calls waiting are refused at once, and no call waits any more. While
//     open, a window whose own calls are slow to come back is judged
//     before they do: the calls in flight and the rate calls end at give
//     the latency by Little's law, so a sudden flood is caught within a
//     window, not once its queue has drained. Limiting, the slack is a
//     tenth.
//   - Limiting, a window in which the limit held calls back (a refusal,
//     or the limit reached) grows it by sqrt(limit)/2 while its mean is
//     within half the tolerance (1.25 times the baseline, or 5 ms over
//     it), and holds it between the two. Such a window never moves the baseline: a long
//     overload does not teach the limiter that queueing is normal. The
//     first window that held nothing back opens the limit again.
//
// A shrink that does not shorten the latency says it is not the queue's
// (a dependency of the service became slow): when the calls in flight
// fell by a quarter, none left from before the shrink to wait behind, and
// the mean latency did not fall by a tenth, the window's mean becomes the
// baseline.
//
// A window's samples are the calls admitted in it. While open, it starts
// again at its first refusal: the calls admitted before met a less busy
// service than the later ones, and judged with them they would hide a
// queue that is forming, and open the limit further into it.
//
// The dispatch puts only the calls whose request is whole under the
// limit, releases each at its answer's head, and takes a sample only of
// those whose answer is whole too: a stream's life is its client's.
//
// failsafe-go's adaptivelimiter was measured for this and not taken
// (docs/decisions.md, decision 110): it tolerates a queue of 3 to 6 calls
// past saturation whatever the capacity (its thresholds are fixed
// multiples of log10(limit)), which for a service that serves 4 at a time
// is twice or more its latency, and its baseline follows the recent
// latency, so under a sustained overload its limit settled at 4 to 6
// times the service's capacity (p50 100-150 ms for a 25 ms service).
package adaptivelimit
