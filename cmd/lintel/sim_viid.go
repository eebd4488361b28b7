package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/lintel-edge/lintel/sync/police/viidsim"
)

func init() {
	simCommands["viid"] = subcommand{
		summary: "simulate a GA/T 1400 (VIID) police platform: digest registration, keepalive expiry, failures, a record of what arrived",
		run:     runSimVIID,
	}
}

func runSimVIID(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("sim viid", std)
	listen := fs.String("listen", "127.0.0.1:8090", "HTTP listen address")
	user := fs.String("user", "lintel", "digest user the gateway registers as")
	passFile := fs.String("password-file", "", "file holding the digest password (keeps it out of ps and shell history)")
	pass := fs.String("password", "", "digest password (prefer -password-file)")
	realm := fs.String("realm", "viid-sim", "digest realm")
	expiry := fs.Duration("expiry", 180*time.Second, "forget a node not heard from for this long (it must register again)")
	reject := fs.Int("reject", 0, "refuse the first N records written (StatusCode 1), accept the rest of each list")
	fail503 := fs.Int("fail-503", 0, "answer the first N write requests with 503")
	slow := fs.Duration("slow", 0, "delay every answer by this much")
	timeMode := fs.String("time-mode", "1", "SystemTimeObject.TimeMode: 1 network-synchronised, 2 set by hand")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	password := *pass
	if *passFile != "" {
		b, err := os.ReadFile(*passFile)
		if err != nil {
			return usageErr("-password-file: %v", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	if password == "" || *user == "" {
		return usageErr("-user and -password (or -password-file) are required: the simulator always wants digest auth")
	}
	sim := viidsim.New(viidsim.Options{Realm: *realm, Username: *user, Password: password, Expiry: *expiry,
		RejectRecords: *reject, Fail503: *fail503, Slow: *slow, TimeMode: *timeMode})
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(std.out, "viid simulator listening on http://%s (what arrived: GET /sim/received)\n", l.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		r := sim.Received()
		fmt.Fprintf(std.out, "received: %d registrations, %d keepalives, %d images, %d video slices, %d scenes, %d rejected\n",
			r.Registers, r.Keepalives, len(r.Images), len(r.VideoSlices), len(r.Scenes), len(r.Rejected))
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}
