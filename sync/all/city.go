package all

import _ "github.com/lintel-edge/lintel/sync/city" // MQTT uplink to the city platform
