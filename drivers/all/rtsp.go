//go:build !no_rtsp

package all

import _ "github.com/lintel-edge/lintel/drivers/rtsp" // falling-object cameras and smart peepholes (RTSP + ONVIF metadata)
