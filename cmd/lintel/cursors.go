package main

import (
	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/rules"
)

// The rules engine reads the log under its own cursor, so the store keeps
// every event until the rules have seen it, across restarts too.
func init() {
	// Only beside another cursor: alone it would delete every event as soon
	// as the rules had seen it.
	storeCursors["rules"] = func(c *config.Config) bool {
		return len(rules.FromConfig(c).Elders) > 0 && (len(c.Sinks) > 0 || c.Storage.History > 0)
	}
}
