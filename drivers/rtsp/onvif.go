package rtsp

import (
	"bytes"
	"compress/gzip"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// MaxDocumentSize bounds one reassembled ONVIF metadata document. Real
// documents are a few KiB; a camera that never sets the marker bit must
// not grow the buffer without end.
const MaxDocumentSize = 256 << 10

// Reassembler joins the RTP payloads of the ONVIF metadata track into whole
// XML documents. The RTP marker bit closes a document (ONVIF Streaming
// spec); a gap in sequence numbers, a timestamp change in mid-document or
// an oversized document drops the partial document, because a document
// with a hole in it may still parse and would then report wrong values.
//
// Invariants (checked by FuzzMetadata): a returned document is the exact
// concatenation of the payloads of consecutive packets with one timestamp,
// the last one carrying the marker; it is never longer than MaxSize.
type Reassembler struct {
	// MaxSize bounds a document; 0 means MaxDocumentSize.
	MaxSize int

	buf     []byte
	ts      uint32
	lastSeq uint16
	started bool // a packet was seen, lastSeq is valid
	inDoc   bool // buf holds the beginning of a document
	broken  bool // a piece of the current document is lost: skip to the next marker

	// Dropped counts partial documents thrown away.
	Dropped uint64
}

// Push adds one RTP packet's payload. It returns a complete document (a
// fresh slice the caller may keep) when the packet closes one.
func (r *Reassembler) Push(seq uint16, ts uint32, marker bool, payload []byte) ([]byte, bool) {
	limit := r.MaxSize
	if limit <= 0 {
		limit = MaxDocumentSize
	}
	if !r.started && !looksLikeStart(payload) {
		// Joining a stream in mid-document: wait for the next one.
		r.broken = true
	}
	if r.started && seq != r.lastSeq+1 {
		// Loss (or reordering, which TCP does not produce): whatever we
		// hold is incomplete. The packet at hand may continue the lost
		// document; only a payload that visibly starts one is trusted.
		if r.inDoc || !looksLikeStart(payload) {
			r.drop()
			r.broken = !looksLikeStart(payload)
		}
	}
	r.started = true
	r.lastSeq = seq
	if r.broken {
		if marker {
			r.broken = false
		}
		return nil, false
	}
	if r.inDoc && ts != r.ts {
		// A document spans one timestamp; a new one means the marker of
		// the previous one was lost.
		r.drop()
	}
	if !r.inDoc {
		r.ts = ts
		r.inDoc = true
		r.buf = r.buf[:0]
	}
	if len(r.buf)+len(payload) > limit {
		r.drop()
		r.broken = !marker
		return nil, false
	}
	r.buf = append(r.buf, payload...)
	if !marker {
		return nil, false
	}
	doc := bytes.Clone(r.buf)
	r.inDoc = false
	r.buf = r.buf[:0]
	if cap(r.buf) > 64<<10 {
		r.buf = nil // do not keep one huge document's buffer forever
	}
	return doc, true
}

func (r *Reassembler) drop() {
	if r.inDoc {
		r.Dropped++
	}
	r.inDoc = false
	r.buf = r.buf[:0]
}

// looksLikeStart reports whether a payload can be the first piece of a
// document: an XML declaration or root element, or a gzip header.
func looksLikeStart(p []byte) bool {
	if len(p) >= 2 && p[0] == 0x1f && p[1] == 0x8b {
		return true
	}
	p = bytes.TrimLeft(p, " \t\r\n\xef\xbb\xbf")
	if len(p) == 0 || p[0] != '<' {
		return false
	}
	head := p[:min(len(p), 128)]
	return bytes.HasPrefix(head, []byte("<?xml")) || bytes.Contains(head, []byte("MetadataStream"))
}

// Gunzip inflates a document of the vnd.onvif.metadata.gzip variant,
// bounded by MaxDocumentSize.
func Gunzip(doc []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("gunzip metadata: %w", err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, MaxDocumentSize+1))
	if err != nil {
		return nil, fmt.Errorf("gunzip metadata: %w", err)
	}
	if len(out) > MaxDocumentSize {
		return nil, errors.New("gunzip metadata: document larger than 256KiB")
	}
	return out, nil
}

// Metadata is what one tt:MetadataStream document says.
type Metadata struct {
	Frames []Frame        // tt:VideoAnalytics/tt:Frame
	Events []Notification // tt:Event/wsnt:NotificationMessage
}

// Frame is one analytics frame: the objects a camera tracks at one instant.
type Frame struct {
	UtcTime time.Time
	Objects []Object
}

// Object is a tracked object. Positions are normalised image coordinates:
// x from 0 (left) to 1 (right), y from 0 (top) to 1 (bottom), whatever
// convention the camera used.
type Object struct {
	ID         string  `json:"id,omitempty"`
	Class      string  `json:"class,omitempty"`
	Likelihood float64 `json:"likelihood,omitempty"`
	Box        *Box    `json:"box,omitempty"`
	Center     *Point  `json:"center,omitempty"`
}

// Box is a bounding box in normalised image coordinates (Top < Bottom).
type Box struct {
	Left   float64 `json:"left"`
	Top    float64 `json:"top"`
	Right  float64 `json:"right"`
	Bottom float64 `json:"bottom"`
}

// Point is a position in normalised image coordinates.
type Point struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
}

// Notification is one wsnt:NotificationMessage.
type Notification struct {
	Topic      string // raw, with the camera's namespace prefixes
	UtcTime    time.Time
	UtcTimeRaw string
	Operation  string // Initialized, Changed, Deleted or ""
	Source     []Item
	Key        []Item
	Data       []Item
}

// Item is one tt:SimpleItem (or the name of a tt:ElementItem, with no value).
type Item struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Lookup returns the value of the first item called name (case-insensitive).
func Lookup(items []Item, name string) (string, bool) {
	for _, it := range items {
		if strings.EqualFold(it.Name, name) {
			return it.Value, true
		}
	}
	return "", false
}

// Limits of the parser, so a hostile or broken camera costs bounded work.
const (
	maxDepth         = 64
	maxNotifications = 256
	maxObjects       = 1024
	maxItems         = 64
	maxTextLen       = 1024
)

// ParseMetadata reads one tt:MetadataStream document. It matches elements
// by local name only, because vendors bind the ONVIF namespaces to
// different prefixes (tt, ns1, none) and some get the URIs wrong; and it
// reads attributes by name in any order (Tapo writes Value before Name).
//
// On malformed XML it returns what it completed before the error together
// with the error: a notification or frame is only returned once its end
// tag has been read.
func ParseMetadata(doc []byte) (*Metadata, error) {
	if len(doc) >= 2 && doc[0] == 0x1f && doc[1] == 0x8b {
		var err error
		if doc, err = Gunzip(doc); err != nil {
			return &Metadata{}, err
		}
	}
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) {
		// Names and values we use are ASCII; a GB2312 declaration must not
		// make the whole document unreadable.
		return r, nil
	}
	p := parser{md: &Metadata{}}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return p.md, fmt.Errorf("parse metadata: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(p.stack) >= maxDepth {
				return p.md, errors.New("parse metadata: elements nested too deep")
			}
			p.stack = append(p.stack, t.Name.Local)
			p.root = true
			p.text.Reset()
			p.start(t)
		case xml.EndElement:
			if len(p.stack) == 0 {
				return p.md, errors.New("parse metadata: unbalanced end tag")
			}
			p.end(t.Name.Local)
			p.stack = p.stack[:len(p.stack)-1]
			p.text.Reset()
		case xml.CharData:
			if p.text.Len()+len(t) <= maxTextLen {
				p.text.Write(t)
			}
		}
	}
	if len(p.stack) > 0 {
		return p.md, errors.New("parse metadata: document ends inside an element")
	}
	if !p.root {
		return p.md, errors.New("parse metadata: no root element")
	}
	return p.md, nil
}

type parser struct {
	md    *Metadata
	stack []string
	root  bool
	text  bytes.Buffer

	// current notification
	note    *Notification
	section string // Source, Key, Data inside tt:Message

	// current analytics frame
	frame *Frame
	obj   *Object
	tr    transform

	typeLik     float64 // Likelihood attribute of the current tt:Type
	inCandidate bool    // inside tt:ClassCandidate (ONVIF 1.x objects)
	candType    string
	candLik     float64
}

// transform maps a camera's coordinates to ONVIF's normalised ones:
// n = translate + scale*raw (tt:Transformation).
type transform struct{ tx, ty, sx, sy float64 }

var identity = transform{0, 0, 1, 1}

func attr(t xml.StartElement, name string) (string, bool) {
	for _, a := range t.Attr {
		if strings.EqualFold(a.Name.Local, name) {
			return strings.TrimSpace(a.Value), true
		}
	}
	return "", false
}

func attrFloat(t xml.StartElement, name string) (float64, bool) {
	s, ok := attr(t, name)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != f || f > 1e9 || f < -1e9 {
		return 0, false
	}
	return f, true
}

func (p *parser) parent(n int) string {
	if len(p.stack) <= n {
		return ""
	}
	return p.stack[len(p.stack)-1-n]
}

func parseUTC(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05.999999999Z0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

func (p *parser) start(t xml.StartElement) {
	switch t.Name.Local {
	case "NotificationMessage":
		if len(p.md.Events) < maxNotifications {
			p.note = &Notification{}
		}
	case "Message":
		// wsnt:Message wraps tt:Message; the attributes sit on the inner one,
		// but some cameras put them on the outer one.
		if p.note != nil {
			if v, ok := attr(t, "UtcTime"); ok {
				p.note.UtcTimeRaw = v
				p.note.UtcTime, _ = parseUTC(v)
			}
			if v, ok := attr(t, "PropertyOperation"); ok {
				p.note.Operation = v
			}
		}
	case "Source", "Key", "Data":
		if p.note != nil && p.parent(1) == "Message" {
			p.section = t.Name.Local
		}
	case "SimpleItem", "ElementItem":
		if p.note != nil && p.section != "" {
			name, _ := attr(t, "Name")
			val, _ := attr(t, "Value")
			it := Item{Name: name, Value: val}
			switch p.section {
			case "Source":
				if len(p.note.Source) < maxItems {
					p.note.Source = append(p.note.Source, it)
				}
			case "Key":
				if len(p.note.Key) < maxItems {
					p.note.Key = append(p.note.Key, it)
				}
			case "Data":
				if len(p.note.Data) < maxItems {
					p.note.Data = append(p.note.Data, it)
				}
			}
		}
	case "Frame":
		if p.parent(1) == "VideoAnalytics" {
			p.frame = &Frame{}
			p.tr = identity
			if v, ok := attr(t, "UtcTime"); ok {
				p.frame.UtcTime, _ = parseUTC(v)
			}
		}
	case "Translate":
		if p.frame != nil && p.obj == nil {
			p.tr.tx, _ = attrFloat(t, "x")
			p.tr.ty, _ = attrFloat(t, "y")
		}
	case "Scale":
		if p.frame != nil && p.obj == nil {
			if v, ok := attrFloat(t, "x"); ok && v != 0 {
				p.tr.sx = v
			}
			if v, ok := attrFloat(t, "y"); ok && v != 0 {
				p.tr.sy = v
			}
		}
	case "Object":
		if p.frame != nil && len(p.frame.Objects) < maxObjects {
			id, _ := attr(t, "ObjectId")
			p.obj = &Object{ID: id}
		}
	case "BoundingBox":
		if p.obj != nil {
			l, ok1 := attrFloat(t, "left")
			tp, ok2 := attrFloat(t, "top")
			r, ok3 := attrFloat(t, "right")
			b, ok4 := attrFloat(t, "bottom")
			if ok1 && ok2 && ok3 && ok4 {
				x1, y1 := p.tr.image(l, tp)
				x2, y2 := p.tr.image(r, b)
				p.obj.Box = &Box{Left: min(x1, x2), Top: min(y1, y2), Right: max(x1, x2), Bottom: max(y1, y2)}
			}
		}
	case "CenterOfGravity":
		if p.obj != nil {
			x, ok1 := attrFloat(t, "x")
			y, ok2 := attrFloat(t, "y")
			if ok1 && ok2 {
				xi, yi := p.tr.image(x, y)
				p.obj.Center = &Point{X: xi, Y: yi}
			}
		}
	case "ClassCandidate":
		p.inCandidate, p.candType, p.candLik = true, "", 0
	case "Type":
		p.typeLik, _ = attrFloat(t, "Likelihood")
	}
}

// image converts a camera coordinate to image coordinates (0..1, y down).
func (tr transform) image(x, y float64) (float64, float64) {
	nx := tr.tx + tr.sx*x
	ny := tr.ty + tr.sy*y
	return round4((nx + 1) / 2), round4((1 - ny) / 2)
}

func round4(f float64) float64 {
	return float64(int64(f*10000+copysign(0.5, f))) / 10000
}

func copysign(a, b float64) float64 {
	if b < 0 {
		return -a
	}
	return a
}

func (p *parser) end(name string) {
	text := strings.TrimSpace(p.text.String())
	switch name {
	case "Topic":
		if p.note != nil && p.parent(1) == "NotificationMessage" {
			p.note.Topic = text
		}
	case "NotificationMessage":
		if p.note != nil {
			p.md.Events = append(p.md.Events, *p.note)
			p.note, p.section = nil, ""
		}
	case "Source", "Key", "Data":
		if p.note != nil && p.section == name && p.parent(1) == "Message" {
			p.section = ""
		}
	case "Type":
		switch {
		case p.obj == nil || text == "":
		case p.inCandidate:
			p.candType = text
		case p.obj.Class == "" || p.typeLik > p.obj.Likelihood:
			// Several tt:Type elements: keep the most likely class.
			p.obj.Class, p.obj.Likelihood = text, p.typeLik
		}
	case "Likelihood":
		if p.inCandidate {
			if f, err := strconv.ParseFloat(text, 64); err == nil && f == f {
				p.candLik = f
			}
		}
	case "ClassCandidate":
		if p.obj != nil && p.candType != "" && (p.obj.Class == "" || p.candLik > p.obj.Likelihood) {
			p.obj.Class, p.obj.Likelihood = p.candType, p.candLik
		}
		p.inCandidate = false
	case "Object":
		if p.obj != nil && p.frame != nil {
			p.frame.Objects = append(p.frame.Objects, *p.obj)
			p.obj = nil
		}
	case "Frame":
		if p.frame != nil && p.parent(1) == "VideoAnalytics" {
			p.md.Frames = append(p.md.Frames, *p.frame)
			p.frame = nil
		}
	}
}
