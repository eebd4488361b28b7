//go:build !no_modbus

package all

import _ "github.com/lintel-edge/lintel/drivers/modbus" // gates, access controllers, relays, RS-485 sensors
