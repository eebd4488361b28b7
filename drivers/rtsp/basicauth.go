package rtsp

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

// ErrBasicRefused: the camera (or whatever answers at its address) asked
// for Basic authentication over a plain connection, which would send the
// password itself across the network; it was not sent.
var ErrBasicRefused = errors.New("the camera asks for Basic authentication over a plain connection: " +
	"the password would cross the network in clear and was not sent; turn on Digest authentication in the camera, " +
	"use rtsps:// or https://, or set allow_basic_auth: true in the device's options")

// basicPolicy decides whether a camera's password may go out as Basic
// authentication. Over TLS (rtsps://, https://) it may; over plain RTSP or
// HTTP only with allow_basic_auth: true, and then the first time it does
// warn is called (once per camera, to log it loudly).
type basicPolicy struct {
	allowed bool
	once    sync.Once
	warn    func(where string)
}

// mayBasic reports whether Basic credentials may be sent over a
// connection of that scheme.
func (p *basicPolicy) mayBasic(scheme string) bool {
	if scheme == "rtsps" || scheme == "https" {
		return true
	}
	if p == nil || !p.allowed {
		return false
	}
	if p.warn != nil {
		p.once.Do(func() { p.warn(scheme) })
	}
	return true
}

// rtspGuard strips Basic credentials from the RTSP requests of one
// session when the policy forbids them. gortsplib already prefers Digest
// when the camera offers both; this covers a camera (or an impostor at
// its address) that offers only Basic. Use its onRequest as the client's
// OnRequest, and refused after a failed request.
type rtspGuard struct {
	p       *basicPolicy
	scheme  string
	stopped atomic.Bool
}

func (g *rtspGuard) onRequest(req *base.Request) {
	v := req.Header["Authorization"]
	if len(v) == 0 || !strings.HasPrefix(strings.TrimSpace(v[0]), "Basic") {
		return
	}
	if !g.p.mayBasic(g.scheme) {
		delete(req.Header, "Authorization")
		g.stopped.Store(true)
	}
}

// refused reports whether Basic credentials were held back.
func (g *rtspGuard) refused() bool { return g.stopped.Load() }
