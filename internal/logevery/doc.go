// Package logevery bounds how often an event that can repeat fast is
// logged: a responder refusing forged requests (a reply subject it will
// not answer) must not let their sender flood its log. A [Limiter] says
// when to log and how many events went unlogged since the last line, so
// that count goes into the line.
package logevery
