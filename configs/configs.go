// Package configs embeds the shipped device profiles, radio code tables and
// camera profiles, so a gateway works with no files beside the binary.
// Installers add their own models under profiles.dirs in the config; those
// win over the built-in ones of the same name.
package configs

import (
	"embed"

	"github.com/lintel-edge/lintel/edge/config"
)

// FS holds profiles/ (Modbus register maps), radio/ (433 MHz code tables)
// and cameras/ (ONVIF topic maps), one YAML file per model.
//
//go:embed profiles radio cameras
var FS embed.FS

// Demo is configs/demo.yaml, the compound `lintel demo` runs.
//
//go:embed demo.yaml
var Demo []byte

func init() { config.RegisterProfiles(FS) }
