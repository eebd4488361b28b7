package police

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"
)

// ContentType is the media type of GA/T 1400 request and response bodies.
const ContentType = "application/VIID+JSON"

// VIIDTime is the GA/T 1400 time layout (yyyyMMddHHmmss, local time of
// the platform's zone; we send Asia/Shanghai unless configured).
const VIIDTime = "20060102150405"

// Status codes of ResponseStatusObject.StatusCode.
const (
	StatusOK                 = 0
	StatusOtherError         = 1
	StatusDeviceBusy         = 2
	StatusDeviceError        = 3
	StatusInvalidOperation   = 4
	StatusInvalidXMLFormat   = 5
	StatusInvalidXMLContent  = 6
	StatusInvalidJSONFormat  = 7
	StatusInvalidJSONContent = 8
	StatusReboot             = 9
)

// Record types in 41-digit ids (GA/T 1400.3: DeviceID + type + time + seq).
const (
	TypeVideoSlice = "01"
	TypeImage      = "02"
	TypeFile       = "03"
	TypeScene      = "09" // scene objects (48-digit ids: source 41 + type + seq)
)

// StatusObject is one ResponseStatusObject.
type StatusObject struct {
	ID           string `json:"Id"`
	RequestURL   string `json:"RequestURL"`
	StatusCode   int    `json:"StatusCode"`
	StatusString string `json:"StatusString"`
	LocalTime    string `json:"LocalTime"`
}

// OK reports whether the platform accepted the operation.
func (s StatusObject) OK() bool { return s.StatusCode == StatusOK }

// Retryable reports whether a failed status may succeed if sent again:
// busy, device error, reboot and other errors are; malformed or invalid
// content is not (sending the same bytes again cannot help).
func (s StatusObject) Retryable() bool {
	switch s.StatusCode {
	case StatusOtherError, StatusDeviceBusy, StatusDeviceError, StatusReboot:
		return true
	}
	return false
}

// maxResponse bounds a response body we read.
const maxResponse = 1 << 20

// statusCode accepts StatusCode as a number or a numeric string: both are
// seen in the field.
type statusCode int

func (c *statusCode) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		b = []byte(strings.TrimSpace(s))
	}
	n, err := strconv.Atoi(string(b))
	if err != nil || n < 0 || n > 1<<20 {
		return fmt.Errorf("StatusCode %q: want a small number", truncate(string(b), 16))
	}
	*c = statusCode(n)
	return nil
}

type wireStatus struct {
	ID           string     `json:"Id"`
	RequestURL   string     `json:"RequestURL"`
	StatusCode   statusCode `json:"StatusCode"`
	StatusString string     `json:"StatusString"`
	LocalTime    string     `json:"LocalTime"`
}

func (w wireStatus) obj() StatusObject {
	return StatusObject{w.ID, w.RequestURL, int(w.StatusCode), w.StatusString, w.LocalTime}
}

// ParseResponse parses a VIID response body: a ResponseStatusObject or a
// ResponseStatusListObject (whose ResponseStatusObject is a list, or a
// single object from platforms that collapse one-element lists). It
// returns every status in order.
func ParseResponse(body []byte) ([]StatusObject, error) {
	if len(body) > maxResponse {
		return nil, errors.New("viid response: too large")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, fmt.Errorf("viid response: %w", err)
	}
	if raw, ok := top["ResponseStatusListObject"]; ok {
		var list struct {
			Items json.RawMessage `json:"ResponseStatusObject"`
		}
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("viid response: ResponseStatusListObject: %w", err)
		}
		items := bytes.TrimSpace(list.Items)
		if len(items) == 0 || string(items) == "null" {
			return nil, errors.New("viid response: ResponseStatusListObject without ResponseStatusObject")
		}
		var ws []wireStatus
		if items[0] == '[' {
			if err := json.Unmarshal(items, &ws); err != nil {
				return nil, fmt.Errorf("viid response: ResponseStatusObject list: %w", err)
			}
		} else {
			var w wireStatus
			if err := json.Unmarshal(items, &w); err != nil {
				return nil, fmt.Errorf("viid response: ResponseStatusObject: %w", err)
			}
			ws = []wireStatus{w}
		}
		if len(ws) == 0 {
			return nil, errors.New("viid response: empty ResponseStatusObject list")
		}
		out := make([]StatusObject, len(ws))
		for i, w := range ws {
			out[i] = w.obj()
		}
		return out, nil
	}
	if raw, ok := top["ResponseStatusObject"]; ok {
		var w wireStatus
		if err := json.Unmarshal(raw, &w); err != nil {
			return nil, fmt.Errorf("viid response: ResponseStatusObject: %w", err)
		}
		return []StatusObject{w.obj()}, nil
	}
	return nil, errors.New("viid response: neither ResponseStatusObject nor ResponseStatusListObject")
}

// SystemTime is the platform's SystemTimeObject.
type SystemTime struct {
	VIIDServerID string `json:"VIIDServerID"`
	TimeMode     string `json:"TimeMode"` // "1" network (NTP) synchronised, "2" set by hand
	LocalTime    string `json:"LocalTime"`
	TimeZone     string `json:"TimeZone"`
}

// ParseSystemTime parses a GET /VIID/System/Time body.
func ParseSystemTime(body []byte, loc *time.Location) (SystemTime, time.Time, error) {
	var w struct {
		O *SystemTime `json:"SystemTimeObject"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return SystemTime{}, time.Time{}, fmt.Errorf("viid time: %w", err)
	}
	if w.O == nil {
		return SystemTime{}, time.Time{}, errors.New("viid time: no SystemTimeObject")
	}
	if tz := strings.TrimSpace(w.O.TimeZone); tz != "" {
		if l, err := time.LoadLocation(tz); err == nil {
			loc = l
		}
	}
	t, err := time.ParseInLocation(VIIDTime, w.O.LocalTime, loc)
	if err != nil {
		return *w.O, time.Time{}, fmt.Errorf("viid time: LocalTime %q: want yyyyMMddHHmmss", truncate(w.O.LocalTime, 20))
	}
	return *w.O, t, nil
}

// IDs builds GA/T 1400 identifiers.
type IDs struct {
	// Prefix is the first 13 digits of generated device ids: 8-digit
	// administrative/centre code, 2-digit industry, 3-digit device type.
	Prefix string
	// Devices maps Lintel device ids to configured 20-digit ids.
	Devices map[string]string
	Loc     *time.Location
}

// Device returns the 20-digit id of a Lintel device: the configured one,
// else Prefix + a 7-digit serial hashed from the device id (stable across
// restarts and config reorderings; collisions are refused by validation).
func (x IDs) Device(dev string) string {
	if id, ok := x.Devices[dev]; ok {
		return id
	}
	return x.Prefix + fmt.Sprintf("%07d", hashSerial(dev))
}

func hashSerial(dev string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(dev))
	return h.Sum32() % 10_000_000
}

// Record returns a 41-digit record id: device id (20) + type (2) + time
// (14, yyyyMMddHHmmss) + sequence (5). seq is the event's log seq and n
// the record's index within the event (0..9), so the id of a record is
// the same every time the event is sent.
func (x IDs) Record(device, typ string, t time.Time, seq uint64, n int) string {
	return device + typ + t.In(x.Loc).Format(VIIDTime) + fmt.Sprintf("%05d", (seq%10_000)*10+uint64(n%10))
}

// Object returns a 48-digit object id: the 41-digit source id + object
// type (2) + sequence (5).
func (x IDs) Object(source, typ string, n int) string {
	return source + typ + fmt.Sprintf("%05d", n%100_000)
}

// IsDigits reports whether s is exactly n ASCII digits.
func IsDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
