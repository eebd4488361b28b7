// Package rtsp is the driver for RTSP cameras: falling-object (高空抛物)
// cameras on the façades and smart peepholes (智能猫眼) at elders' doors.
//
// For each camera it keeps one RTSP session (DESCRIBE, SETUP of the video
// track and of the ONVIF metadata track, PLAY over TCP by default) and
// reconnects forever with capped, jittered backoff, because gortsplib does
// not. It turns the camera's own analytics, carried as ONVIF metadata XML
// next to the video, into Lintel events through a per-model profile
// (configs/cameras), watches stream health (camera.online/offline,
// camera.video_lost/restored), and cuts evidence clips (fragmented MP4) from
// a memory-bounded ring buffer of encoded access units around incidents.
// The gateway never decodes video (H.264 and H.265 are both passed
// through). Incidents also get a JPEG snapshot, from a configured URL or
// from the snapshot URI the camera gives over ONVIF (SOAP with a
// WS-Security digest, looked up once per session).
//
// Credentials in camera URLs never reach logs, events or errors: every
// URL shown goes through config.RedactURL and errors from the RTSP library
// are scrubbed of the password.
package rtsp
