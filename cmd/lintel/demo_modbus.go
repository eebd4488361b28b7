//go:build !no_serial && !no_rtsp

package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/lintel-edge/lintel/drivers/modbus"
	"github.com/lintel-edge/lintel/edge/config"
)

// The demo's gates: a Modbus TCP simulator serving the barrier and the
// access controller of configs/demo.yaml, changing state now and then.
func init() {
	demoHooks = append(demoHooks, func(ctx context.Context, d *demo) error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		addr := ln.Addr().String()
		ln.Close()
		sim := modbus.NewSim(modbus.SimWire{}, d.log.With("sim", "modbus"))
		cfg := config.New()
		for unit, name := range map[uint8]string{1: "barrier-gate", 2: "access-4door"} {
			p, err := modbus.LoadProfile(cfg, name)
			if err != nil {
				return fmt.Errorf("demo modbus: %w", err)
			}
			sim.Add(unit, p)
		}
		started := make(chan error, 1)
		d.wg.Add(2)
		go func() {
			defer d.wg.Done()
			err := sim.ServeTCP(ctx, addr)
			select {
			case started <- err:
			default:
			}
		}()
		go func() {
			defer d.wg.Done()
			sim.Animate(ctx, 20*time.Second, nil)
		}()
		// ServeTCP returns at once only when it could not listen.
		select {
		case err := <-started:
			if err != nil {
				return fmt.Errorf("demo modbus simulator: %w", err)
			}
		case <-time.After(200 * time.Millisecond):
		}
		d.setDevice("gate-south", "address", "tcp://"+addr)
		d.setDevice("access-b3", "address", "tcp://"+addr)
		return nil
	})
}
