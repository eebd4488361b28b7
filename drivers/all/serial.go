//go:build !no_serial

package all

import _ "github.com/lintel-edge/lintel/drivers/serial" // radio receivers (433 MHz door magnets, PIR, SOS)
