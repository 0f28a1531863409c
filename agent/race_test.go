//go:build race

package agent_test

import "testing"

// skipUnderRace skips an allocation budget under the race detector: there
// sync.Pool drops a quarter of what is put back at random (sync/pool.go),
// so a round trip's allocations are neither the real count nor the same
// from run to run. make test runs the budgets again without -race.
func skipUnderRace(t *testing.T) {
	t.Helper()
	t.Skip("allocation budgets are measured without -race (sync.Pool drops objects at random under it)")
}
