package main

// The drivers, sinks and profiles linked into this binary register
// themselves from their init functions.
import (
	_ "github.com/lintel-edge/lintel/configs"
	_ "github.com/lintel-edge/lintel/drivers/all"
	_ "github.com/lintel-edge/lintel/sync/all"
)
