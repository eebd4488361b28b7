package modbus

import "time"

// BusStats is a snapshot of one bus's counters, for the status page and
// metrics.
type BusStats struct {
	Bus          string    `json:"bus"`
	Transport    string    `json:"transport"`
	Since        time.Time `json:"since"`
	Transactions uint64    `json:"transactions"`
	Timeouts     uint64    `json:"timeouts"`
	// CRCErrors counts replies that did not match their request: bad
	// CRC, short frame, wrong unit, function code, byte count or length,
	// or (RTU) a reply followed at once by stray bytes.
	CRCErrors  uint64 `json:"crc_errors"`
	Exceptions uint64 `json:"exceptions"`
	IOErrors   uint64 `json:"io_errors"`
	// Resyncs counts the times an RTU line was left to fall silent and
	// drained: after a timeout, a mismatched reply, or stray bytes found
	// before a request.
	Resyncs uint64 `json:"resyncs"`
	// StrayBytes counts bytes that arrived when no reply was due (late
	// replies, replies to other requests, noise); all were discarded.
	StrayBytes uint64 `json:"stray_bytes"`
	// Reopens counts link reopens to get back in step: on rtu:// after
	// three resyncs in a row, on rtuovertcp:// after every resync.
	Reopens uint64 `json:"reopens"`
	BytesTx uint64 `json:"bytes_tx"`
	BytesRx uint64 `json:"bytes_rx"`
	// WireTime is the ideal time the exchanges take on the wire with the
	// protocol's silences (RTU only); BusyTime the wall time spent in
	// transactions, timeouts included.
	WireTime time.Duration `json:"wire_time"`
	BusyTime time.Duration `json:"busy_time"`
	// Utilisation is WireTime over the elapsed time for RTU buses (how
	// much of the line carries frames) and BusyTime over elapsed for TCP.
	Utilisation float64 `json:"utilisation"`
	// UsefulItems counts registers or bits that belonged to a point;
	// ReadItems all that were read, bridged holes included.
	UsefulItems uint64        `json:"useful_items"`
	ReadItems   uint64        `json:"read_items"`
	Devices     []DeviceStats `json:"devices"`
}

// DeviceStats are one device's counters.
type DeviceStats struct {
	ID       string        `json:"id"`
	Unit     int           `json:"unit"`
	State    string        `json:"state"` // online, offline, or "" before the first poll
	LastOK   time.Time     `json:"last_ok,omitzero"`
	Requests uint64        `json:"requests"`
	Failures uint64        `json:"failures"`
	RTTLast  time.Duration `json:"rtt_last"`
	RTTAvg   time.Duration `json:"rtt_avg"`
	RTTMax   time.Duration `json:"rtt_max"`
	LastErr  string        `json:"last_error,omitempty"`
	// PlanRequests is how many reads one full poll of the device takes
	// (event and telemetry plans together).
	PlanRequests int `json:"plan_requests"`
}

// Stats returns a snapshot of the bus's counters. Safe to call from any
// goroutine.
func (b *Bus) Stats() BusStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats
	out := BusStats{
		Bus: b.Name(), Transport: b.lc.scheme, Since: s.since, Transactions: s.transactions, Timeouts: s.timeouts,
		CRCErrors: s.crc, Exceptions: s.exceptions, IOErrors: s.ioErrors, Resyncs: s.resyncs, StrayBytes: s.strayBytes,
		Reopens: s.reopens, BytesTx: s.bytesTx,
		BytesRx: s.bytesRx, WireTime: s.wire, BusyTime: s.busy, UsefulItems: s.usefulItems, ReadItems: s.readItems,
	}
	if el := b.now().Sub(s.since); !s.since.IsZero() && el > 0 {
		if b.lc.scheme == "tcp" {
			out.Utilisation = float64(s.busy) / float64(el)
		} else {
			out.Utilisation = float64(s.wire) / float64(el)
		}
	}
	for _, d := range b.devs {
		out.Devices = append(out.Devices, DeviceStats{
			ID: d.cfg.ID, Unit: int(d.unit), State: d.state, LastOK: d.lastOK, Requests: d.requests, Failures: d.failures,
			RTTLast: d.rttLast, RTTAvg: d.rttAvg, RTTMax: d.rttMax, LastErr: d.lastErr,
			PlanRequests: len(d.evPlan) + len(d.tlPlan),
		})
	}
	return out
}
