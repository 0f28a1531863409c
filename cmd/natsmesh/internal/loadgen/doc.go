// Package loadgen generates load against one target and records how long
// each call took, for natsmesh's benchmarks.
//
// A target is a function that makes one call. [Closed] runs a closed loop: N
// workers each call the target again as soon as the previous call returns, so
// the load adapts to the target's speed and the figure that matters is
// throughput. [Open] runs an open loop: calls are due at a fixed rate, on a
// schedule fixed in advance, and each call's latency is measured from the
// time it was due (its intended send time), not from when a worker got to
// send it. A slow target therefore shows the queueing delay its callers
// would see, instead of hiding it by sending less (coordinated omission).
//
// Every run is bounded in time (and optionally in calls), and latencies are
// kept as a bounded sample in a [Recorder] from which percentiles are read.
package loadgen
