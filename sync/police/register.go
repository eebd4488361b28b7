package police

import (
	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/config"
)

func init() {
	config.RegisterSink("police", validateSection)
	edge.RegisterSink("police", newFromEnv)
}

func newFromEnv(env edge.Env, name string, n config.Node) (edge.Component, error) {
	o, err := optionsFor(env.Config, n)
	if err != nil {
		return nil, err
	}
	s, err := New(Deps{Name: name, Gateway: env.Config.Gateway.ID, DataDir: env.Config.Gateway.DataDir, Log: env.Store, Logger: env.Logger}, o)
	if err != nil {
		return nil, err
	}
	return s, nil
}
