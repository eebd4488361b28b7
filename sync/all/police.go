package all

import _ "github.com/lintel-edge/lintel/sync/police" // GA/T 1400 police feed
