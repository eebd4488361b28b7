package main

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lintel-edge/lintel/drivers/rtsp"
)

// Aggregated driver metrics, the default (status.metrics.per_device:
// false). A device id names a flat ("door-3-1-301"), so per-device
// series of door state and last-seen times are a movement history of
// each home in any Prometheus that scrapes the page. Without per_device,
// devices are only counted and summed by kind and building; buses keep
// their own series (a bus is wiring, not a home). The names are those of
// the per-device series where the meaning is the same sum; counts of
// devices get names of their own.
var (
	byBusState  = []string{"bus", "state"}
	byKindBuild = []string{"kind", "building"}
	byKindState = []string{"kind", "building", "state"}

	aggModbusDevices = metricDef("lintel_modbus_devices", "Modbus devices by bus and state (online, offline, unknown).", byBusState)

	aggReceivers      = metricDef("lintel_radio_receivers", "Radio receivers configured and running.", nil)
	aggReceiversUp    = metricDef("lintel_radio_receivers_up", "Radio receivers whose port is open.", nil)
	aggRxBytes        = metricDef("lintel_radio_received_bytes_total", "Bytes read from the receiver ports.", nil)
	aggRxFrames       = metricDef("lintel_radio_frames_total", "Frames decoded from the receivers.", nil)
	aggRxGarbage      = metricDef("lintel_radio_garbage_bytes_total", "Bytes dropped while resynchronising on the receivers' streams.", nil)
	aggRxReconnects   = metricDef("lintel_radio_reconnects_total", "Times a receiver port came back after being lost.", nil)
	aggRxUnknown      = metricDef("lintel_radio_unknown_codes", "Radio codes heard that no configured sensor is bound to.", nil)
	aggSensors        = metricDef("lintel_radio_sensors", "Radio sensors heard, by kind and building.", byKindBuild)
	aggSensorsSilent  = metricDef("lintel_radio_sensors_silent", "Supervised sensors that missed their heartbeats, by kind and building.", byKindBuild)
	aggSensorsTamper  = metricDef("lintel_radio_sensors_tamper", "Sensors reporting tamper, by kind and building.", byKindBuild)
	aggSensorFrames   = metricDef("lintel_radio_sensor_frames_total", "Frames heard from the sensors, repeats included, by kind and building.", byKindBuild)
	aggSensorEvents   = metricDef("lintel_radio_sensor_events_total", "Events emitted for the sensors, by kind and building.", byKindBuild)
	aggCameras        = metricDef("lintel_cameras", "Cameras and peepholes by kind, building and state (online, offline, connecting).", byKindState)
	aggCamVideoLost   = metricDef("lintel_cameras_video_lost", "Sessions up with no video, by kind and building.", byKindBuild)
	aggCamLost        = metricDef("lintel_camera_rtp_lost_packets_total", "RTP packets lost, by kind and building.", byKindBuild)
	aggCamReconnects  = metricDef("lintel_camera_reconnects_total", "Session attempts after the first, by kind and building.", byKindBuild)
	aggCamClips       = metricDef("lintel_camera_clips_total", "Evidence clips written, by kind and building.", byKindBuild)
	aggCamClipErrors  = metricDef("lintel_camera_clip_errors_total", "Evidence clips that failed, by kind and building.", byKindBuild)
	aggCamMetaDropped = metricDef("lintel_camera_metadata_dropped_total", "ONVIF metadata documents dropped, by kind and building.", byKindBuild)

	aggDescs = []*prometheus.Desc{
		mbTransactions, mbTimeouts, mbCRC, mbResyncs, mbStrayBytes, mbExceptions, mbIOErrors, mbReopens, mbBytesTx, mbBytesRx, mbUtilisation,
		mbReadItems, mbUsefulItems, aggModbusDevices,
		aggReceivers, aggReceiversUp, aggRxBytes, aggRxFrames, aggRxGarbage, aggRxReconnects, aggRxUnknown,
		aggSensors, aggSensorsSilent, aggSensorsTamper, aggSensorFrames, aggSensorEvents,
		aggCameras, aggCamVideoLost, aggCamLost, aggCamReconnects, aggCamClips, aggCamClipErrors, aggCamMetaDropped,
	}
)

func (m driverMetrics) collectAggregate(ch chan<- prometheus.Metric) {
	emit := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, t, v, labels...)
	}
	for _, b := range m.h.modbusBuses() {
		emit(mbTransactions, prometheus.CounterValue, float64(b.Transactions), b.Bus)
		emit(mbTimeouts, prometheus.CounterValue, float64(b.Timeouts), b.Bus)
		emit(mbCRC, prometheus.CounterValue, float64(b.CRCErrors), b.Bus)
		emit(mbExceptions, prometheus.CounterValue, float64(b.Exceptions), b.Bus)
		emit(mbIOErrors, prometheus.CounterValue, float64(b.IOErrors), b.Bus)
		emit(mbReopens, prometheus.CounterValue, float64(b.Reopens), b.Bus)
		emit(mbResyncs, prometheus.CounterValue, float64(b.Resyncs), b.Bus)
		emit(mbStrayBytes, prometheus.CounterValue, float64(b.StrayBytes), b.Bus)
		emit(mbBytesTx, prometheus.CounterValue, float64(b.BytesTx), b.Bus)
		emit(mbBytesRx, prometheus.CounterValue, float64(b.BytesRx), b.Bus)
		emit(mbUtilisation, prometheus.GaugeValue, b.Utilisation, b.Bus)
		emit(mbReadItems, prometheus.CounterValue, float64(b.ReadItems), b.Bus)
		emit(mbUsefulItems, prometheus.CounterValue, float64(b.UsefulItems), b.Bus)
		states := map[string]int{"online": 0, "offline": 0, "unknown": 0}
		for _, d := range b.Devices {
			st := d.State
			if st != "online" && st != "offline" {
				st = "unknown"
			}
			states[st]++
		}
		for st, n := range states {
			emit(aggModbusDevices, prometheus.GaugeValue, float64(n), b.Bus, st)
		}
	}

	var receivers, up, bytes, frames, garbage, reconnects, unknown float64
	sensors, silent, tamper, sFrames, sEvents := map[kb]float64{}, map[kb]float64{}, map[kb]float64{}, map[kb]float64{}, map[kb]float64{}
	for _, r := range m.h.receivers() {
		receivers++
		if r.Online {
			up++
		}
		bytes += float64(r.Stats.Bytes)
		frames += float64(r.Stats.Frames)
		garbage += float64(r.Stats.Garbage)
		reconnects += float64(r.Reconnects)
		unknown += float64(len(r.Unknown))
		for _, s := range r.Sensors {
			if !m.h.ids[s.ID] {
				continue
			}
			k := kb{m.h.kinds[s.ID], m.h.buildings[s.ID]}
			sensors[k]++
			silent[k] += 0
			tamper[k] += 0
			if s.Supervised && s.Silent {
				silent[k]++
			}
			if s.Tamper {
				tamper[k]++
			}
			sFrames[k] += float64(s.Frames)
			sEvents[k] += float64(s.Events)
		}
	}
	if receivers > 0 {
		emit(aggReceivers, prometheus.GaugeValue, receivers)
		emit(aggReceiversUp, prometheus.GaugeValue, up)
		emit(aggRxBytes, prometheus.CounterValue, bytes)
		emit(aggRxFrames, prometheus.CounterValue, frames)
		emit(aggRxGarbage, prometheus.CounterValue, garbage)
		emit(aggRxReconnects, prometheus.CounterValue, reconnects)
		emit(aggRxUnknown, prometheus.GaugeValue, unknown)
	}
	for _, k := range sortedKB(sensors) {
		emit(aggSensors, prometheus.GaugeValue, sensors[k], k.kind, k.building)
		emit(aggSensorsSilent, prometheus.GaugeValue, silent[k], k.kind, k.building)
		emit(aggSensorsTamper, prometheus.GaugeValue, tamper[k], k.kind, k.building)
		emit(aggSensorFrames, prometheus.CounterValue, sFrames[k], k.kind, k.building)
		emit(aggSensorEvents, prometheus.CounterValue, sEvents[k], k.kind, k.building)
	}

	type kbs struct{ kind, building, state string }
	cams := map[kbs]float64{}
	lostVideo, rtpLost, camRe, clips, clipErr, metaDrop := map[kb]float64{}, map[kb]float64{}, map[kb]float64{}, map[kb]float64{}, map[kb]float64{}, map[kb]float64{}
	for _, c := range m.h.cameras() {
		k := kb{m.h.kinds[c.Device], m.h.buildings[c.Device]}
		st := "connecting"
		switch c.State {
		case rtsp.StateOnline:
			st = "online"
		case rtsp.StateOffline:
			st = "offline"
		}
		cams[kbs{k.kind, k.building, st}]++
		if c.VideoLost {
			lostVideo[k]++
		} else {
			lostVideo[k] += 0
		}
		rtpLost[k] += float64(c.RTPLost)
		camRe[k] += float64(c.Reconnects)
		clips[k] += float64(c.Clips)
		clipErr[k] += float64(c.ClipErrors)
		metaDrop[k] += float64(c.MetadataDropped)
	}
	for k, n := range cams {
		emit(aggCameras, prometheus.GaugeValue, n, k.kind, k.building, k.state)
	}
	for _, k := range sortedKB(lostVideo) {
		emit(aggCamVideoLost, prometheus.GaugeValue, lostVideo[k], k.kind, k.building)
		emit(aggCamLost, prometheus.CounterValue, rtpLost[k], k.kind, k.building)
		emit(aggCamReconnects, prometheus.CounterValue, camRe[k], k.kind, k.building)
		emit(aggCamClips, prometheus.CounterValue, clips[k], k.kind, k.building)
		emit(aggCamClipErrors, prometheus.CounterValue, clipErr[k], k.kind, k.building)
		emit(aggCamMetaDropped, prometheus.CounterValue, metaDrop[k], k.kind, k.building)
	}
}

// kb is a (kind, building) pair, the aggregation key.
type kb struct{ kind, building string }

func sortedKB[V any](m map[kb]V) []kb {
	out := make([]kb, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].kind < out[j].kind || out[i].kind == out[j].kind && out[i].building < out[j].building
	})
	return out
}
