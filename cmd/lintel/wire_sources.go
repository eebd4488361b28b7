package main

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lintel-edge/lintel/drivers/modbus"
	"github.com/lintel-edge/lintel/drivers/rtsp"
	"github.com/lintel-edge/lintel/drivers/serial"
	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/status"
)

// driverHealth feeds the status page (DeviceSource, BusSource) and
// /metrics from what the drivers know of their devices. The driver
// components run under edge and the wiring holds no handle on them, so
// each driver package keeps a registry of its running instances
// (modbus.Snapshots, serial.Snapshots, rtsp.Snapshots). Those registries
// are process-wide; only this gateway's enabled devices are taken from
// them (tests run more than one gateway in a process).
//
// Everything here is read at request or scrape time: nothing is cached,
// and the drivers' snapshots are cheap copies under their own locks.
type driverHealth struct {
	ids map[string]bool
	// kind and building of each device, for the aggregated metrics.
	kinds, buildings map[string]string
	now              func() time.Time
	// The drivers' registries; tests replace them.
	modbusSnap func() []modbus.BusStats
	serialSnap func() []serial.ReceiverStatus
	cameraSnap func() []rtsp.Health
}

func newDriverHealth(cfg *config.Config) *driverHealth {
	h := &driverHealth{ids: map[string]bool{}, kinds: map[string]string{}, buildings: map[string]string{}, now: time.Now,
		modbusSnap: modbus.Snapshots, serialSnap: serial.Snapshots, cameraSnap: rtsp.Snapshots}
	for _, d := range cfg.Devices {
		if !d.Disabled {
			h.ids[d.ID] = true
			h.kinds[d.ID] = d.Kind
			b := d.Place.Building
			if b == "" && d.Household != "" {
				if hh, ok := cfg.Household(d.Household); ok {
					b = hh.Place.Building
				}
			}
			h.buildings[d.ID] = b
		}
	}
	return h
}

// modbusBuses returns the running buses serving this gateway's devices,
// each with only those devices.
func (h *driverHealth) modbusBuses() []modbus.BusStats {
	var out []modbus.BusStats
	for _, b := range h.modbusSnap() {
		var devs []modbus.DeviceStats
		for _, d := range b.Devices {
			if h.ids[d.ID] {
				devs = append(devs, d)
			}
		}
		if len(devs) == 0 {
			continue
		}
		b.Devices = devs
		out = append(out, b)
	}
	return out
}

func (h *driverHealth) receivers() []serial.ReceiverStatus {
	var out []serial.ReceiverStatus
	for _, r := range h.serialSnap() {
		if h.ids[r.ID] {
			out = append(out, r)
		}
	}
	return out
}

func (h *driverHealth) cameras() []rtsp.Health {
	var out []rtsp.Health
	for _, c := range h.cameraSnap() {
		if h.ids[c.Device] {
			out = append(out, c)
		}
	}
	return out
}

// Devices implements status.DeviceSource. Online is left empty where the
// driver cannot tell (a device not polled yet, an unsupervised sensor not
// heard yet): the page then goes by the device's events.
func (h *driverHealth) Devices() []status.Device {
	var out []status.Device
	for _, b := range h.modbusBuses() {
		for _, d := range b.Devices {
			det := map[string]string{
				"bus": b.Bus, "unit": strconv.Itoa(d.Unit),
				"requests": u64(d.Requests), "failures": u64(d.Failures),
			}
			if d.RTTAvg > 0 {
				det["rtt_ms"], det["rtt_avg_ms"], det["rtt_max_ms"] = millis(d.RTTLast), millis(d.RTTAvg), millis(d.RTTMax)
			}
			if d.LastErr != "" {
				det["last_error"] = d.LastErr
			}
			out = append(out, status.Device{ID: d.ID, Online: d.State, LastSeen: d.LastOK, Battery: -1, Detail: det})
		}
	}
	for _, r := range h.receivers() {
		det := map[string]string{
			"codec": r.Codec, "reconnects": u64(r.Reconnects), "bytes": u64(r.Stats.Bytes),
			"frames": u64(r.Stats.Frames), "garbage_bytes": u64(r.Stats.Garbage), "unknown_codes": strconv.Itoa(len(r.Unknown)),
		}
		if r.LastError != "" {
			det["last_error"] = r.LastError
		}
		online := ""
		if !r.Since.IsZero() { // the port has been tried
			online = upDown(r.Online)
		}
		out = append(out, status.Device{ID: r.ID, Online: online, Battery: -1, Detail: det})
		for _, s := range r.Sensors {
			if !h.ids[s.ID] {
				continue
			}
			d := status.Device{ID: s.ID, Battery: -1, Tamper: s.Tamper, Detail: map[string]string{
				"receiver": r.ID, "frames": u64(s.Frames), "repeats": u64(s.Repeats), "events": u64(s.Events),
				"supervised": strconv.FormatBool(s.Supervised),
			}}
			switch {
			case !r.Online:
				// Nothing can be heard through a receiver that is down.
				d.Online = "unknown"
			case s.Supervised && s.Silent:
				d.Online = "offline"
			case s.LastSeen != nil:
				d.Online = "online"
			}
			if s.LastSeen != nil {
				d.LastSeen = *s.LastSeen
			}
			if s.Heartbeat != "" {
				d.Detail["heartbeat"] = s.Heartbeat
			}
			if s.RSSI != nil {
				d.Detail["rssi"] = strconv.Itoa(*s.RSSI)
			}
			if s.Door != "" {
				d.Detail["door"] = string(s.Door)
			}
			out = append(out, d)
		}
	}
	now := h.now()
	for _, c := range h.cameras() {
		d := status.Device{ID: c.Device, Battery: -1, LastSeen: c.LastKeyframe, Detail: cameraDetail(c, now)}
		switch c.State {
		case rtsp.StateOnline:
			d.Online = "online"
		case rtsp.StateOffline:
			d.Online = "offline"
		}
		out = append(out, d)
	}
	return out
}

// Buses implements status.BusSource: Modbus buses, radio receivers and
// camera streams.
func (h *driverHealth) Buses() []status.Bus {
	var out []status.Bus
	for _, b := range h.modbusBuses() {
		offline, lastErr := 0, ""
		for _, d := range b.Devices {
			if d.State == "offline" {
				offline++
				if lastErr == "" && d.LastErr != "" {
					lastErr = d.ID + ": " + d.LastErr
				}
			}
		}
		det := map[string]string{
			"transport": b.Transport, "devices": strconv.Itoa(len(b.Devices)), "offline": strconv.Itoa(offline),
			"exceptions": u64(b.Exceptions), "io_errors": u64(b.IOErrors), "reopens": u64(b.Reopens),
			"resyncs": u64(b.Resyncs), "stray_bytes": u64(b.StrayBytes),
			"bytes_tx": u64(b.BytesTx), "bytes_rx": u64(b.BytesRx),
		}
		if b.ReadItems > 0 {
			det["read_efficiency"] = strconv.FormatFloat(float64(b.UsefulItems)/float64(b.ReadItems), 'f', 2, 64)
		}
		out = append(out, status.Bus{
			Name: b.Bus, Kind: "modbus", OK: offline == 0, Utilisation: b.Utilisation, Requests: b.Transactions,
			Timeouts: b.Timeouts, CRCErrors: b.CRCErrors, LastError: lastErr, Since: b.Since, Detail: det,
		})
	}
	for _, r := range h.receivers() {
		out = append(out, status.Bus{
			Name: r.ID, Kind: "serial", OK: r.Online, LastError: r.LastError, Since: r.Since,
			Detail: map[string]string{
				"codec": r.Codec, "reconnects": u64(r.Reconnects), "bytes": u64(r.Stats.Bytes), "frames": u64(r.Stats.Frames),
				"skipped": u64(r.Stats.Skipped), "garbage_bytes": u64(r.Stats.Garbage), "sensors": strconv.Itoa(len(r.Sensors)),
				"unknown_codes": strconv.Itoa(len(r.Unknown)),
			},
		})
	}
	now := h.now()
	for _, c := range h.cameras() {
		last := c.LastError
		if c.VideoLost && last == "" {
			last = "video lost"
		}
		out = append(out, status.Bus{
			Name: c.Device, Kind: "camera", OK: c.State == rtsp.StateOnline && !c.VideoLost,
			LastError: last, Since: c.Since, Detail: cameraDetail(c, now),
		})
	}
	return out
}

// cameraDetail is a stream's health as label/value text. The URL is left
// out: the device's address, redacted, is shown beside it.
func cameraDetail(c rtsp.Health, now time.Time) map[string]string {
	d := map[string]string{
		"state": c.State, "video_lost": strconv.FormatBool(c.VideoLost),
		"fps": strconv.FormatFloat(c.FPS, 'f', 1, 64), "bitrate_kbps": strconv.FormatFloat(c.BitrateBps/1000, 'f', 0, 64),
		"packets_per_s": strconv.FormatFloat(c.PacketsPerSec, 'f', 1, 64), "rtp_lost": u64(c.RTPLost),
		"reconnects": u64(c.Reconnects), "metadata": strconv.FormatBool(c.Metadata),
	}
	if !c.LastKeyframe.IsZero() {
		d["since_keyframe_s"] = strconv.FormatFloat(c.SinceKeyframe(now).Seconds(), 'f', 1, 64)
	}
	if c.Codec != "" {
		d["codec"], d["transport"] = c.Codec, c.Transport
	}
	if c.Width > 0 {
		d["resolution"] = strconv.Itoa(c.Width) + "x" + strconv.Itoa(c.Height)
	}
	if c.LastError != "" {
		d["last_error"] = c.LastError
	}
	return d
}

func u64(v uint64) string { return strconv.FormatUint(v, 10) }

func millis(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64)
}

func upDown(up bool) string {
	if up {
		return "online"
	}
	return "offline"
}

// Driver metrics. Label values are device ids and Modbus bus names
// (scheme:host:port or scheme:/dev/…, which carry no credentials); a
// camera is labelled by its device id, never by its URL.
var (
	mbLabels  = []string{"bus"}
	mbDevice  = []string{"bus", "device"}
	byDevice  = []string{"device"}
	bySensor  = []string{"receiver", "device"}
	metricDef = func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}

	mbTransactions = metricDef("lintel_modbus_transactions_total", "Modbus transactions on the bus.", mbLabels)
	mbTimeouts     = metricDef("lintel_modbus_timeouts_total", "Modbus transactions that timed out or found the device unreachable.", mbLabels)
	mbCRC          = metricDef("lintel_modbus_crc_errors_total", "Modbus replies that did not match their request: bad CRC, short frame, wrong unit, function or length.", mbLabels)
	mbResyncs      = metricDef("lintel_modbus_resyncs_total", "Times the line was drained back in step after a timeout or a mismatched reply.", mbLabels)
	mbStrayBytes   = metricDef("lintel_modbus_stray_bytes_total", "Bytes drained from the line that belonged to no exchange (late or unsolicited replies).", mbLabels)
	mbExceptions   = metricDef("lintel_modbus_exceptions_total", "Modbus exception replies.", mbLabels)
	mbIOErrors     = metricDef("lintel_modbus_io_errors_total", "Modbus link I/O errors.", mbLabels)
	mbReopens      = metricDef("lintel_modbus_reopens_total", "Link closed and reopened to get back in step (repeated resyncs, or RTU over TCP).", mbLabels)
	mbBytesTx      = metricDef("lintel_modbus_sent_bytes_total", "Bytes sent on the bus.", mbLabels)
	mbBytesRx      = metricDef("lintel_modbus_received_bytes_total", "Bytes received on the bus.", mbLabels)
	mbUtilisation  = metricDef("lintel_modbus_utilisation_ratio", "Share of time the bus carries frames (RTU) or waits on transactions (TCP).", mbLabels)
	mbReadItems    = metricDef("lintel_modbus_read_items_total", "Registers and bits read, bridged holes included.", mbLabels)
	mbUsefulItems  = metricDef("lintel_modbus_useful_items_total", "Registers and bits read that belong to a configured point.", mbLabels)
	mbDevUp        = metricDef("lintel_modbus_device_up", "Modbus device online (1), offline (0) or not polled yet (-1).", mbDevice)
	mbDevRequests  = metricDef("lintel_modbus_device_requests_total", "Transactions addressed to the device.", mbDevice)
	mbDevFailures  = metricDef("lintel_modbus_device_failures_total", "Transactions to the device that failed (exceptions excluded).", mbDevice)
	mbDevRTT       = metricDef("lintel_modbus_device_rtt_seconds", "Round-trip time of the device's last answered transaction.", mbDevice)
	mbDevRTTAvg    = metricDef("lintel_modbus_device_rtt_avg_seconds", "Moving average (1/8) of the device's round-trip time.", mbDevice)
	mbDevRTTMax    = metricDef("lintel_modbus_device_rtt_max_seconds", "Longest round-trip time of the device since start.", mbDevice)

	rxUp        = metricDef("lintel_radio_receiver_up", "Radio receiver port open (1) or not (0).", byDevice)
	rxBytes     = metricDef("lintel_radio_received_bytes_total", "Bytes read from the receiver port.", byDevice)
	rxFrames    = metricDef("lintel_radio_frames_total", "Frames decoded from the receiver.", byDevice)
	rxSkipped   = metricDef("lintel_radio_skipped_frames_total", "Well-formed receiver frames that carry no sensor code.", byDevice)
	rxGarbage   = metricDef("lintel_radio_garbage_bytes_total", "Bytes dropped while resynchronising on the receiver's stream.", byDevice)
	rxReconnect = metricDef("lintel_radio_reconnects_total", "Times the receiver port came back after being lost.", byDevice)
	rxUnknown   = metricDef("lintel_radio_unknown_codes", "Radio codes heard that no configured sensor is bound to.", byDevice)
	snFrames    = metricDef("lintel_radio_sensor_frames_total", "Frames heard from the sensor, repeats included.", bySensor)
	snRepeats   = metricDef("lintel_radio_sensor_repeats_total", "RF repeats of the sensor's frames dropped.", bySensor)
	snEvents    = metricDef("lintel_radio_sensor_events_total", "Events emitted for the sensor.", bySensor)
	snLastSeen  = metricDef("lintel_radio_sensor_last_seen_timestamp_seconds", "When the sensor was last heard.", bySensor)
	snRSSI      = metricDef("lintel_radio_sensor_rssi", "Signal strength of the sensor's last frame, in the receiver's own unit.", bySensor)
	snSilent    = metricDef("lintel_radio_sensor_silent", "Supervised sensor missed its heartbeats (1) or not (0).", bySensor)
	snTamper    = metricDef("lintel_radio_sensor_tamper", "Sensor reports tamper (1) or not (0).", bySensor)
	snDoorOpen  = metricDef("lintel_radio_sensor_door_open", "Door magnet open (1) or closed (0); absent while unknown.", bySensor)

	camUp         = metricDef("lintel_camera_up", "Camera session playing (1), down (0) or connecting (-1).", byDevice)
	camVideoLost  = metricDef("lintel_camera_video_lost", "Session up but no video for video_lost_after (1) or not (0).", byDevice)
	camPackets    = metricDef("lintel_camera_packets_per_second", "RTP packets received per second.", byDevice)
	camBitrate    = metricDef("lintel_camera_bitrate_bits_per_second", "Video bitrate received.", byDevice)
	camFPS        = metricDef("lintel_camera_frames_per_second", "Video frames received per second.", byDevice)
	camKeyAge     = metricDef("lintel_camera_keyframe_age_seconds", "Time since the last keyframe.", byDevice)
	camLost       = metricDef("lintel_camera_rtp_lost_packets_total", "RTP packets lost.", byDevice)
	camReconnects = metricDef("lintel_camera_reconnects_total", "Session attempts after the first.", byDevice)
	camMetaDocs   = metricDef("lintel_camera_metadata_documents_total", "ONVIF metadata documents received.", byDevice)
	camMetaDrop   = metricDef("lintel_camera_metadata_dropped_total", "ONVIF metadata documents dropped (loss, overflow).", byDevice)
	camBufBytes   = metricDef("lintel_camera_buffer_bytes", "Pre-roll video held in memory.", byDevice)
	camBufSeconds = metricDef("lintel_camera_buffer_seconds", "Pre-roll video held, in seconds.", byDevice)
	camClips      = metricDef("lintel_camera_clips_total", "Evidence clips written.", byDevice)
	camClipErrors = metricDef("lintel_camera_clip_errors_total", "Evidence clips that failed.", byDevice)

	driverDescs = []*prometheus.Desc{
		mbTransactions, mbTimeouts, mbCRC, mbResyncs, mbStrayBytes, mbExceptions, mbIOErrors, mbReopens, mbBytesTx, mbBytesRx, mbUtilisation,
		mbReadItems, mbUsefulItems, mbDevUp, mbDevRequests, mbDevFailures, mbDevRTT, mbDevRTTAvg, mbDevRTTMax,
		rxUp, rxBytes, rxFrames, rxSkipped, rxGarbage, rxReconnect, rxUnknown,
		snFrames, snRepeats, snEvents, snLastSeen, snRSSI, snSilent, snTamper, snDoorOpen,
		camUp, camVideoLost, camPackets, camBitrate, camFPS, camKeyAge, camLost, camReconnects,
		camMetaDocs, camMetaDrop, camBufBytes, camBufSeconds, camClips, camClipErrors,
	}
)

// driverMetrics exports the drivers' figures at scrape time: per device
// with status.metrics.per_device, otherwise aggregated (see
// wire_metrics_agg.go).
type driverMetrics struct {
	h         *driverHealth
	perDevice bool
}

func (m driverMetrics) Describe(ch chan<- *prometheus.Desc) {
	descs := driverDescs
	if !m.perDevice {
		descs = aggDescs
	}
	for _, d := range descs {
		ch <- d
	}
}

func (m driverMetrics) Collect(ch chan<- prometheus.Metric) {
	if !m.perDevice {
		m.collectAggregate(ch)
		return
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	flag := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for _, b := range m.h.modbusBuses() {
		counter(mbTransactions, b.Transactions, b.Bus)
		counter(mbTimeouts, b.Timeouts, b.Bus)
		counter(mbCRC, b.CRCErrors, b.Bus)
		counter(mbExceptions, b.Exceptions, b.Bus)
		counter(mbIOErrors, b.IOErrors, b.Bus)
		counter(mbReopens, b.Reopens, b.Bus)
		counter(mbResyncs, b.Resyncs, b.Bus)
		counter(mbStrayBytes, b.StrayBytes, b.Bus)
		counter(mbBytesTx, b.BytesTx, b.Bus)
		counter(mbBytesRx, b.BytesRx, b.Bus)
		gauge(mbUtilisation, b.Utilisation, b.Bus)
		counter(mbReadItems, b.ReadItems, b.Bus)
		counter(mbUsefulItems, b.UsefulItems, b.Bus)
		for _, d := range b.Devices {
			up := -1.0
			switch d.State {
			case "online":
				up = 1
			case "offline":
				up = 0
			}
			gauge(mbDevUp, up, b.Bus, d.ID)
			counter(mbDevRequests, d.Requests, b.Bus, d.ID)
			counter(mbDevFailures, d.Failures, b.Bus, d.ID)
			if d.RTTAvg > 0 {
				gauge(mbDevRTT, d.RTTLast.Seconds(), b.Bus, d.ID)
				gauge(mbDevRTTAvg, d.RTTAvg.Seconds(), b.Bus, d.ID)
				gauge(mbDevRTTMax, d.RTTMax.Seconds(), b.Bus, d.ID)
			}
		}
	}
	for _, r := range m.h.receivers() {
		gauge(rxUp, flag(r.Online), r.ID)
		counter(rxBytes, r.Stats.Bytes, r.ID)
		counter(rxFrames, r.Stats.Frames, r.ID)
		counter(rxSkipped, r.Stats.Skipped, r.ID)
		counter(rxGarbage, r.Stats.Garbage, r.ID)
		counter(rxReconnect, r.Reconnects, r.ID)
		gauge(rxUnknown, float64(len(r.Unknown)), r.ID)
		for _, s := range r.Sensors {
			if !m.h.ids[s.ID] {
				continue
			}
			counter(snFrames, s.Frames, r.ID, s.ID)
			counter(snRepeats, s.Repeats, r.ID, s.ID)
			counter(snEvents, s.Events, r.ID, s.ID)
			if s.LastSeen != nil {
				gauge(snLastSeen, float64(s.LastSeen.UnixMilli())/1000, r.ID, s.ID)
			}
			if s.RSSI != nil {
				gauge(snRSSI, float64(*s.RSSI), r.ID, s.ID)
			}
			if s.Supervised {
				gauge(snSilent, flag(s.Silent), r.ID, s.ID)
			}
			gauge(snTamper, flag(s.Tamper), r.ID, s.ID)
			if s.Door == serial.DoorOpen || s.Door == serial.DoorClosed {
				gauge(snDoorOpen, flag(s.Door == serial.DoorOpen), r.ID, s.ID)
			}
		}
	}
	now := m.h.now()
	for _, c := range m.h.cameras() {
		id := c.Device
		up := -1.0
		switch c.State {
		case rtsp.StateOnline:
			up = 1
		case rtsp.StateOffline:
			up = 0
		}
		gauge(camUp, up, id)
		gauge(camVideoLost, flag(c.VideoLost), id)
		gauge(camPackets, c.PacketsPerSec, id)
		gauge(camBitrate, c.BitrateBps, id)
		gauge(camFPS, c.FPS, id)
		if !c.LastKeyframe.IsZero() {
			gauge(camKeyAge, c.SinceKeyframe(now).Seconds(), id)
		}
		counter(camLost, c.RTPLost, id)
		counter(camReconnects, c.Reconnects, id)
		counter(camMetaDocs, c.MetadataDocs, id)
		counter(camMetaDrop, c.MetadataDropped, id)
		gauge(camBufBytes, float64(c.BufferBytes), id)
		gauge(camBufSeconds, c.BufferSeconds, id)
		counter(camClips, c.Clips, id)
		counter(camClipErrors, c.ClipErrors, id)
	}
}
