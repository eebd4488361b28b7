package rtsp

import (
	"errors"
	"fmt"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/config"
)

// Name is the driver's name in the configuration (driver: rtsp).
const Name = "rtsp"

func init() {
	edge.RegisterDriver(Name, New)
	config.RegisterDriverOptions(Name, validateDevice)
}

// New builds one Camera component per enabled device. All cameras of the
// gateway share one memory budget for their ring buffers.
func New(env edge.Env, devs []config.Device) ([]edge.Component, error) {
	budget := &Budget{}
	var out []edge.Component
	var errs []error
	for _, d := range devs {
		opts, err := optionsAtRuntime(d)
		if err != nil {
			errs = append(errs, fmt.Errorf("device %q: %w", d.ID, err))
			continue
		}
		if budget.Limit == 0 || int64(opts.BufferTotal) < budget.Limit {
			budget.Limit = int64(opts.BufferTotal)
		}
		prof, err := LoadProfile(env.Config, d.Profile)
		if err != nil {
			errs = append(errs, fmt.Errorf("device %q: %w", d.ID, err))
			continue
		}
		cam, err := newCamera(env, d, opts, prof, budget)
		if err != nil {
			errs = append(errs, fmt.Errorf("device %q: %w", d.ID, err))
			continue
		}
		out = append(out, cam)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}
