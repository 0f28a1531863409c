// Package meshtest holds test helpers shared by natsmesh packages: a real
// in-process broker per test, a TCP connection to it, and a polling helper
// for conditions that become true asynchronously (never a bare sleep).
package meshtest
