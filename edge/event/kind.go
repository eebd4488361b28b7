package event

import "sort"

// Kind names what happened, as lower-case dotted words ("door.opened").
// The known kinds are the constants below; drivers may emit others of the
// same shape (camera.event carries unmapped camera topics, for one), and
// receivers must accept kinds they do not know.
type Kind string

// Kinds of Event v1. The comment after each is its default severity.
const (
	// Gateway and store.
	GatewayStarted   Kind = "gateway.started"   // info
	GatewayStopped   Kind = "gateway.stopped"   // info
	StoreDropped     Kind = "store.dropped"     // warning
	StoreQuarantined Kind = "store.quarantined" // alert
	StoreLost        Kind = "store.lost"        // alert: durable events lost to storage damage
	StoreSeqSkipped  Kind = "store.seq_skipped" // info: seqs reserved but never used, skipped after an unclean stop
	StorageDiskFull  Kind = "storage.disk_full" // alert: the data disk is full, the log runs on its reserve
	StorageDiskOK    Kind = "storage.disk_ok"   // info: space is back, the log records everything again
	CommandApplied   Kind = "command.applied"   // info: audit of a downlink or page action
	CommandRefused   Kind = "command.refused"   // warning: audit of a downlink command not applied (reason, claimed sender)

	// Any polled device.
	DeviceOnline  Kind = "device.online"  // info
	DeviceOffline Kind = "device.offline" // warning
	DeviceFault   Kind = "device.fault"   // warning
	DeviceTamper  Kind = "device.tamper"  // alert
	DeviceAlarm   Kind = "device.alarm"   // alert (severity set by the profile)
	Telemetry     Kind = "telemetry"      // info: a measured value

	// Gates, barriers and access controllers.
	GateOpened     Kind = "gate.opened"      // info
	GateClosed     Kind = "gate.closed"      // info
	GateForcedOpen Kind = "gate.forced_open" // alert
	GateHeldOpen   Kind = "gate.held_open"   // warning
	GateCommand    Kind = "gate.command"     // info: result of an open/close command
	AccessGranted  Kind = "access.granted"   // info

	// Home sensors (guardian net).
	DoorOpened       Kind = "door.opened"        // info
	DoorClosed       Kind = "door.closed"        // info
	DoorHeldOpen     Kind = "door.held_open"     // warning
	MotionDetected   Kind = "motion.detected"    // info
	SOSPressed       Kind = "sos.pressed"        // critical
	SmokeAlarm       Kind = "smoke.alarm"        // critical
	WaterLeak        Kind = "water.leak"         // alert
	SensorTamper     Kind = "sensor.tamper"      // warning
	SensorBatteryLow Kind = "sensor.battery_low" // warning
	SensorSilent     Kind = "sensor.silent"      // warning

	// Cameras and smart peepholes.
	CameraOnline        Kind = "camera.online"         // info
	CameraOffline       Kind = "camera.offline"        // warning
	CameraVideoLost     Kind = "camera.video_lost"     // warning
	CameraVideoRestored Kind = "camera.video_restored" // info
	CameraFallingObject Kind = "camera.falling_object" // alert
	CameraTamper        Kind = "camera.tamper"         // alert
	CameraEvent         Kind = "camera.event"          // info: an unmapped topic, kept raw
	PeepholeVisitor     Kind = "peephole.visitor"      // info
	PeepholeLoitering   Kind = "peephole.loitering"    // warning
	PeepholeDoorbell    Kind = "peephole.doorbell"     // info

	// Elder-safety rules (derived events).
	ElderAlertRaised       Kind = "elder.alert.raised"       // alert (critical for SOS)
	ElderAlertEscalated    Kind = "elder.alert.escalated"    // alert
	ElderAlertAcknowledged Kind = "elder.alert.acknowledged" // info
	ElderAlertResolved     Kind = "elder.alert.resolved"     // info
	ElderNoData            Kind = "elder.nodata"             // warning
	ElderHint              Kind = "elder.hint"               // info: advisory, never an alarm
	ElderModeChanged       Kind = "elder.mode.changed"       // info
	ElderPresence          Kind = "elder.presence"           // info
)

type kindInfo struct {
	sev  Severity
	desc string
}

var kinds = map[Kind]kindInfo{
	GatewayStarted:   {Info, "the daemon started (boot counter, version)"},
	GatewayStopped:   {Info, "the daemon stopped cleanly"},
	StoreDropped:     {Warning, "events were dropped by quota or retention; data.count and data.first_seq/last_seq say which"},
	StoreQuarantined: {Alert, "a store or journal file was corrupt at start and moved aside (data.moved_to, data.reason, data.file)"},
	StoreLost:        {Alert, "durable events were lost to storage damage; data.first_seq..data.last_seq and data.count (at most) say which"},
	StoreSeqSkipped:  {Info, "after an unclean stop, seqs data.first_seq..data.last_seq were skipped so no id is ever reused (reserved, not used)"},
	StorageDiskFull:  {Alert, "the data disk is full: telemetry is dropped first, alerts are kept from a reserve (data.free_bytes)"},
	StorageDiskOK:    {Info, "the data disk has room again; data.full_s says how long it was full"},
	CommandApplied:   {Info, "a command from the platform or the status page was applied (audit)"},
	CommandRefused:   {Warning, "a downlink command was refused: unsigned, badly signed, expired, foreign, replayed, retained, busy or rejected (data.reason; audit, rate-limited)"},

	DeviceOnline:  {Info, "a polled device answers again"},
	DeviceOffline: {Warning, "a polled device stopped answering"},
	DeviceFault:   {Warning, "a device reports a fault"},
	DeviceTamper:  {Alert, "a device reports tampering"},
	DeviceAlarm:   {Alert, "a device alarm point became active"},
	Telemetry:     {Info, "a measured value (data.point, data.value, data.unit)"},

	GateOpened:     {Info, "a gate or barrier opened"},
	GateClosed:     {Info, "a gate or barrier closed"},
	GateForcedOpen: {Alert, "a gate or door opened without a grant"},
	GateHeldOpen:   {Warning, "a gate or door stayed open too long"},
	GateCommand:    {Info, "result of a gate command, confirmed by read-back"},
	AccessGranted:  {Info, "an access controller granted entry (counter)"},

	DoorOpened:       {Info, "a door magnet reports open"},
	DoorClosed:       {Info, "a door magnet reports closed"},
	DoorHeldOpen:     {Warning, "a home door stayed open too long"},
	MotionDetected:   {Info, "a PIR or camera saw motion"},
	SOSPressed:       {Critical, "an SOS button was pressed"},
	SmokeAlarm:       {Critical, "a smoke sensor alarms"},
	WaterLeak:        {Alert, "a water-leak sensor alarms"},
	SensorTamper:     {Warning, "a radio sensor reports its case opened"},
	SensorBatteryLow: {Warning, "a radio sensor reports a low battery"},
	SensorSilent:     {Warning, "a supervised sensor missed three heartbeats"},

	CameraOnline:        {Info, "an RTSP session to a camera is up"},
	CameraOffline:       {Warning, "the RTSP session to a camera is down"},
	CameraVideoLost:     {Warning, "the session is up but no video arrives"},
	CameraVideoRestored: {Info, "video arrives again"},
	CameraFallingObject: {Alert, "a falling-object camera detected an object thrown or falling"},
	CameraTamper:        {Alert, "a camera reports tampering (covered, moved, defocused)"},
	CameraEvent:         {Info, "a camera event whose topic no profile maps (data.topic)"},
	PeepholeVisitor:     {Info, "a smart peephole saw a visitor"},
	PeepholeLoitering:   {Warning, "a smart peephole saw someone lingering"},
	PeepholeDoorbell:    {Info, "a smart peephole's doorbell was pressed"},

	ElderAlertRaised:       {Alert, "an elder-safety rule raised an alert (data.rule, data.reason)"},
	ElderAlertEscalated:    {Alert, "an open elder alert reached the next escalation level"},
	ElderAlertAcknowledged: {Info, "someone acknowledged an elder alert"},
	ElderAlertResolved:     {Info, "an elder alert was resolved with an outcome (the visit record)"},
	ElderNoData:            {Warning, "a rule cannot decide: the gateway or the sensors were silent"},
	ElderHint:              {Info, "advisory: activity deviates from the learned routine"},
	ElderModeChanged:       {Info, "an elder's mode (away, hospital, visitor snooze) changed"},
	ElderPresence:          {Info, "inferred presence changed (home, away, unknown)"},
}

// Known reports whether k is one of the kinds defined by Event v1.
func (k Kind) Known() bool { _, ok := kinds[k]; return ok }

// DefaultSeverity is the severity an event of kind k has unless its source
// says otherwise; Info for unknown kinds.
func (k Kind) DefaultSeverity() Severity {
	if i, ok := kinds[k]; ok {
		return i.sev
	}
	return Info
}

// Description is a one-line English description of a known kind.
func (k Kind) Description() string { return kinds[k].desc }

// Valid reports whether k has the shape of a kind: 1–64 bytes of lower-case
// words of [a-z0-9_] joined by single dots.
func (k Kind) Valid() bool {
	if len(k) == 0 || len(k) > 64 {
		return false
	}
	prevDot := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '.':
			if prevDot {
				return false
			}
			prevDot = true
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '_':
			prevDot = false
		default:
			return false
		}
	}
	return !prevDot
}

// Kinds lists the known kinds in lexical order.
func Kinds() []Kind {
	out := make([]Kind, 0, len(kinds))
	for k := range kinds {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
