//go:build !race

package agent_test

import "testing"

// skipUnderRace: see race_test.go.
func skipUnderRace(*testing.T) {}
