// Package meshtest holds test helpers shared by natsmesh packages: a real
// in-process broker per test, a TCP connection to it, and a polling helper
// for conditions that become true asynchronously (never a bare sleep).
//
// Starting an agent is package agenttest's: it imports agent, and meshtest
// must not (agent's own tests, and those of the packages agent imports,
// use meshtest). Only tests import either (TestTestHelpersStayInTests).
package meshtest
