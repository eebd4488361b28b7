// Package all links every sink (uplink) into the binary: each file
// blank-imports one sink package, whose init registers it.
package all
