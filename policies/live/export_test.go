package live

// Fetches is the number of requests for the current version every bucket
// watch of the process has made.
func Fetches() int64 { return fetches.Load() }
