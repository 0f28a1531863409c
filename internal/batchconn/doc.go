// Package batchconn gathers the writes a burst of goroutines makes to one
// connection into one system call.
//
// nats.go appends each message it publishes to one buffer and wakes its
// flusher goroutine, which writes the buffer to the socket. Go's scheduler
// runs a goroutine a channel woke next, so the flusher runs as soon as the
// publisher waits, before the other goroutines the same burst of messages
// made ready: at 32 concurrent calls every message an agent sent was a
// write system call of its own (strace: four 237-byte writes in a row),
// and a read and a wake-up in the broker.
//
// A Conn takes each write into a buffer and returns; a goroutine of its
// own, started by the first write of a burst and gone when all is sent,
// yields once (runtime.Gosched, which puts it behind every goroutine
// ready to run) and then writes everything gathered in one system call.
// A lone message waits for nothing but that yield; messages sent together
// leave together. Order is kept, a write error closes the connection
// (its reads fail too) and is returned by the next Write, a Write waits
// while MaxPending bytes are unsent (as for a full socket buffer), and
// Close sends what is pending within CloseGrace.
//
// Dialer makes such connections for nats.SetCustomDialer. Given a
// server's name (nats.SkipHostLookup), it looks the name up and dials
// its addresses in turn, sharing the dial's timeout among them, as
// nats.go's own dialer does.
package batchconn
