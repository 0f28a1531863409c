// Package freeaddr picks loopback addresses for the processes the bench
// and the tests start, each to listen on one.
//
// A port taken from a ":0" listener is in the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), from which every outgoing connection
// takes its port: free when chosen, it can be taken by a connection
// before the process binds it ("address already in use": seen in CI,
// and in `natsmesh bench`, whose load opens thousands of connections).
// [Loopback] takes ports below that range, where only another user of
// this package can take them; never the same one twice in a process (a
// caller that picks its processes' ports one after another before any
// binds got one twice); and first from a slice of the range of its own,
// by process ID, so that test processes running side by side seldom meet.
package freeaddr
