// Package rules is the gateway's elder-safety engine: it infers whether an
// elder living alone is at home, runs the threshold rules deployed in
// Chinese community programmes (inactivity, no exit, not returned, door
// left open, night wandering, SOS, visitor loitering, sensor health) and an
// advisory learned-routine rule, and keeps each alert's lifecycle (raised →
// escalated → acknowledged → resolved with an outcome).
//
// The [Engine] is a deterministic state machine driven by log events and
// by an injected [Clock]: a replay of a recorded log gives the same alerts
// as the live run, which is what `lintel replay` and the tests rely on.
// Data health is part of every decision: when the gateway was down or the
// sensors a rule relies on are silent, the rule says "no data"
// (elder.nodata) instead of inventing inactivity. People's actions (ack,
// resolve, mode) are applied only from their events in the log, and the
// engine's state is checkpointed in the store's state bucket, so a restart
// neither fires nor forgets a timer wrongly ([Service]).
//
// docs/rules.md describes every rule, its defaults and how to tune it.
package rules
