// Package adaptivelimit provides the concurrency limit an inbound agent
// puts in front of its local service when the operator has set none: a
// limit that follows the service's latency, so calls are refused at once
// (and retried elsewhere by their callers) before they queue at a service
// that is already at its capacity, without anyone knowing that capacity.
//
// A [Limiter] admits a call while fewer than its limit are in flight
// ([Limiter.TryAcquire], a few atomic operations) and learns from the
// latency of the calls it admitted ([Limiter.Release]). It compares, once
// per window of samples, the window's mean latency with the service's
// baseline, its mean latency while the limit did not hold it back:
//
//   - over Tolerance times the baseline, calls are queueing at the
//     service: the limit shrinks in proportion (limit × baseline / mean,
//     by at most half a window), which lands it near the concurrency the
//     service serves without queueing, as a gradient limiter does (Netflix
//     concurrency-limits' Gradient2);
//   - within half of it (Tolerance 1.5: within 1.25 times the baseline),
//     while the limit held calls back (a call was refused, or the limit
//     was reached), the limit grows: doubling until the first shrink
//     (slow start, as TCP's, again after a window that held nothing
//     back), then by sqrt(limit)/2 a window; between the two it holds;
//   - within it, while the limit held nothing back, the window's mean is
//     the service's own latency at the load it had, and the baseline
//     moves towards it (an exponential average), so a service that
//     becomes slower or faster for good is followed. A window in which
//     the limit held calls back never moves the baseline: under a long
//     overload the limiter does not learn that queueing is normal.
//
// The limit never exceeds four times the most calls in flight in the last
// window (or Initial, 4, when that is more): an instance that was busy once
// and is quiet now does not let a sudden flood queue at its service.
//
// A shrink that does not shorten the latency says the latency is not the
// queue's (a dependency of the service became slow): when the calls in
// flight fell by a quarter and the mean latency did not fall by a tenth,
// the window's mean becomes the baseline, and the limit stops shrinking.
//
// A window's samples are the calls admitted in it, and it starts again
// at its first refusal: the calls admitted before met a less busy
// service, and judged with the later ones they would hide the queue (in
// slow start, doubling the limit into it).
//
// Only the calls whose latency is the service's work are samples: the
// dispatch releases a streamed call's permit at its head (its answer's
// header) without a sample, since a stream's life is its client's.
//
// failsafe-go's adaptivelimiter was measured for this and not taken
// (docs/decisions.md, decision 110): it tolerates a queue of 3 to 6 calls
// past saturation whatever the capacity (its thresholds are fixed
// multiples of log10(limit)), which for a service that serves 4 at a time
// is twice or more its latency, and its baseline follows the recent
// latency, so under a sustained overload its limit settled at 4 to 6
// times the service's capacity (p50 100-150 ms for a 25 ms service).
package adaptivelimit
