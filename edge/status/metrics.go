package status

import (
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the page's own counters plus a collector that reads the
// gateway's state (store, runtime, devices, sinks, buses, alerts) at
// scrape time. Label values are ids only: never an address or a secret.
type metrics struct {
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	authFailures *prometheus.CounterVec
	csrfDenied   prometheus.Counter
	hostDenied   prometheus.Counter
	actions      *prometheus.CounterVec
}

func newMetrics(s *Server) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lintel_status_http_requests_total",
			Help: "Status page HTTP requests by route group and status class."}, []string{"group", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lintel_status_http_request_seconds",
			Help: "Status page request latency by route group.", Buckets: []float64{.001, .005, .02, .1, .5, 2}}, []string{"group"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lintel_status_auth_failures_total",
			Help: "Refused logins and API tokens by reason (password, locked, setup_code, token)."}, []string{"reason"}),
		csrfDenied: prometheus.NewCounter(prometheus.CounterOpts{Name: "lintel_status_csrf_denied_total",
			Help: "State-changing requests refused for a missing or wrong CSRF token or a cross-origin source."}),
		hostDenied: prometheus.NewCounter(prometheus.CounterOpts{Name: "lintel_status_host_denied_total",
			Help: "Requests refused because their Host header is not one of the page's names (status.hosts)."}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lintel_status_actions_total",
			Help: "Commands sent from the page and API by result."}, []string{"command", "result"}),
	}
	cs := []prometheus.Collector{m.requests, m.latency, m.authFailures, m.csrfDenied, m.hostDenied, m.actions, &stateCollector{s: s}}
	if s.opts.Registry == nil {
		// A private registry also gets the Go and process collectors; a
		// shared one is the lead's to set up.
		cs = append(cs, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	for _, c := range cs {
		if err := s.reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// group maps a path to a bounded label value.
func routeGroup(p string) string {
	switch {
	case p == "/healthz" || p == "/readyz":
		return "probe"
	case strings.HasPrefix(p, "/api/"):
		return "api"
	case strings.HasPrefix(p, "/static/"):
		return "static"
	case strings.HasPrefix(p, "/clips/"):
		return "clip"
	case p == "/live":
		return "live"
	case p == "/metrics":
		return "metrics"
	case p == "/login" || p == "/setup" || p == "/logout" || p == "/lang":
		return "auth"
	}
	return "page"
}

func (m *metrics) observe(r *http.Request, code int, d time.Duration) {
	g := routeGroup(r.URL.Path)
	m.requests.WithLabelValues(g, strconv.Itoa(code/100)+"xx").Inc()
	if g != "live" {
		m.latency.WithLabelValues(g).Observe(d.Seconds())
	}
}

func (s *Server) metricsHandler() http.HandlerFunc {
	h := promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return h.ServeHTTP
}

// stateCollector reads the gateway's state at scrape time. Its metric set
// depends on what the store reports, so it is an unchecked collector.
type stateCollector struct{ s *Server }

func (c *stateCollector) Describe(chan<- *prometheus.Desc) {}

var metricNameRE = regexp.MustCompile(`[^a-zA-Z0-9_]`)

func gauge(ch chan<- prometheus.Metric, name, help string, v float64, labels map[string]string) {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	vals := make([]string, len(keys))
	for i, k := range keys {
		vals[i] = labels[k]
	}
	d := prometheus.NewDesc(name, help, keys, nil)
	if m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, v, vals...); err == nil {
		ch <- m
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	gauge(ch, "lintel_store_last_seq", "Highest durable event sequence number.", float64(s.opts.Log.LastSeq()), nil)
	if s.opts.StoreStats != nil {
		if b, err := json.Marshal(s.opts.StoreStats()); err == nil {
			var m map[string]any
			if json.Unmarshal(b, &m) == nil {
				flatten(ch, "lintel_store_", m)
			}
		}
	}
	if s.opts.Counters != nil {
		for k, v := range s.opts.Counters() {
			gauge(ch, "lintel_runtime_"+metricNameRE.ReplaceAllString(k, "_"), "Gateway runtime counter "+k+".", float64(v), nil)
		}
	}
	open := map[string]int{}
	for _, a := range s.alerts(0) {
		if a.State != "resolved" {
			open[string(a.Severity)]++
		}
	}
	for _, sev := range []string{"info", "warning", "alert", "critical"} {
		gauge(ch, "lintel_alerts_open", "Open elder alerts by severity.", float64(open[sev]), map[string]string{"severity": sev})
	}
	if s.cfg.Metrics.PerDevice {
		for _, d := range s.devices() {
			l := map[string]string{"device": d.ID, "driver": d.Driver, "kind": d.Kind}
			up := -1.0
			switch d.Online {
			case "online":
				up = 1
			case "offline":
				up = 0
			}
			gauge(ch, "lintel_device_up", "Device reachable (1), offline (0) or not yet heard from (-1).", up, l)
			if !d.LastSeen.IsZero() {
				gauge(ch, "lintel_device_last_seen_timestamp_seconds", "Time of the device's last event.", float64(d.LastSeen.Unix()), map[string]string{"device": d.ID})
			}
			if d.Battery >= 0 {
				gauge(ch, "lintel_device_battery_percent", "Battery level reported by the driver.", float64(d.Battery), map[string]string{"device": d.ID})
			}
		}
	} else {
		// By kind and building only: which flat's door is open, or when
		// each home's sensors were last heard, is personal data.
		type key struct{ kind, building, state string }
		type kb struct{ kind, building string }
		counts, low, tamper := map[key]int{}, map[kb]int{}, map[kb]int{}
		for _, d := range s.devices() {
			st := d.Online
			if st != "online" && st != "offline" {
				st = "unknown"
			}
			counts[key{d.Kind, d.Building, st}]++
			if d.BatteryLow {
				low[kb{d.Kind, d.Building}]++
			}
			if d.Tamper {
				tamper[kb{d.Kind, d.Building}]++
			}
			low[kb{d.Kind, d.Building}] += 0
			tamper[kb{d.Kind, d.Building}] += 0
		}
		for k, n := range counts {
			gauge(ch, "lintel_devices", "Configured devices by kind, building and state (online, offline, unknown).", float64(n),
				map[string]string{"kind": k.kind, "building": k.building, "state": k.state})
		}
		for k, n := range low {
			gauge(ch, "lintel_devices_battery_low", "Devices reporting a low battery, by kind and building.", float64(n), map[string]string{"kind": k.kind, "building": k.building})
		}
		for k, n := range tamper {
			gauge(ch, "lintel_devices_tamper", "Devices reporting tamper, by kind and building.", float64(n), map[string]string{"kind": k.kind, "building": k.building})
		}
	}
	for _, k := range s.sinks() {
		l := map[string]string{"sink": k.Name}
		gauge(ch, "lintel_sink_backlog_events", "Events not yet acknowledged by the sink.", float64(k.Backlog), l)
		gauge(ch, "lintel_sink_oldest_unacked_seconds", "Age of the oldest unacknowledged event.", k.OldestAge.Seconds(), l)
		if k.Known {
			con := 0.0
			if k.Connected {
				con = 1
			}
			gauge(ch, "lintel_sink_connected", "Sink connected to its platform.", con, l)
		}
	}
	for _, b := range s.buses() {
		if !s.cfg.Metrics.PerDevice && b.Kind != "modbus" {
			continue // a receiver's or camera's "bus" is its device id; the drivers' aggregates cover them
		}
		l := map[string]string{"bus": b.Name, "kind": b.Kind}
		gauge(ch, "lintel_bus_utilisation_ratio", "Share of time the bus is busy.", b.Utilisation, l)
		gauge(ch, "lintel_bus_requests", "Requests sent on the bus.", float64(b.Requests), l)
		gauge(ch, "lintel_bus_timeouts", "Requests that timed out.", float64(b.Timeouts), l)
		gauge(ch, "lintel_bus_crc_errors", "Frames with a bad checksum.", float64(b.CRCErrors), l)
	}
	gauge(ch, "lintel_status_sessions", "Open status page sessions.", float64(s.sess.count()), nil)
	gauge(ch, "lintel_status_live_clients", "Pages following live updates.", float64(s.hub.count()), nil)
}

// flatten exports the numeric leaves of a JSON object as gauges named by
// their path; strings and nested arrays are skipped.
func flatten(ch chan<- prometheus.Metric, prefix string, m map[string]any) {
	for k, v := range m {
		name := prefix + metricNameRE.ReplaceAllString(camelToSnake(k), "_")
		switch x := v.(type) {
		case float64:
			gauge(ch, name, "Store statistic "+k+".", x, nil)
		case bool:
			b := 0.0
			if x {
				b = 1
			}
			gauge(ch, name, "Store statistic "+k+".", b, nil)
		case map[string]any:
			if len(prefix) < 80 {
				flatten(ch, name+"_", x)
			}
		}
	}
}

func camelToSnake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			b.WriteRune(r + 'a' - 'A')
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
