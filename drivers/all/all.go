// Package all links every driver into the binary: each file blank-imports
// one driver package, whose init registers it with edge and edge/config.
package all
