package city

import (
	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/config"
)

func init() {
	config.RegisterSink("city", validateSection)
	edge.RegisterSink("city", newFromEnv)
}

func newFromEnv(env edge.Env, name string, n config.Node) (edge.Component, error) {
	o, err := optionsFor(env.Config, n)
	if err != nil {
		return nil, err
	}
	d := Deps{
		Name: name, Gateway: env.Config.Gateway.ID, Compound: env.Config.Gateway.Compound,
		Log: env.Store, Logger: env.Logger, Emit: env.Emit, Version: env.Version,
	}
	if env.Store != nil {
		d.State = env.Store
	}
	if env.Commands != nil {
		d.Commands = env.Commands
	}
	return New(d, o)
}
