package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/rules"
)

// The elder-safety rules run as a service of `lintel run` when the
// configuration enrols at least one elder (rules.elders). They follow the
// store's live events (falling back to reading the log from their own
// position), append derived events through the runtime, and serve the
// alert and mode commands of the status page and the platform.
func init() {
	services = append(services, serviceFactory{name: "rules", order: 10, new: newRulesService})
}

var (
	rulesMu  sync.Mutex
	rulesSvc *rules.Service
)

// runningRules returns the running rules service, or nil; the status page
// reads its Snapshot.
func runningRules() *rules.Service {
	rulesMu.Lock()
	defer rulesMu.Unlock()
	return rulesSvc
}

func newRulesService(env edge.Env, gw *gateway) (edge.Component, error) {
	s := rules.FromConfig(env.Config)
	if len(s.Elders) == 0 {
		env.Logger.Info("rules off: no elders enrolled under rules.elders")
		return nil, nil
	}
	svc, err := rules.NewService(rules.ServiceOptions{
		Settings: s, Log: env.Store, State: env.Store, Emit: env.Emit, Cursor: "rules",
		Logger: env.Logger.With("component", "rules"),
	})
	if err != nil {
		return nil, err
	}
	registerRuleCommands(env.Commands, svc)
	rulesMu.Lock()
	rulesSvc = svc
	rulesMu.Unlock()
	return svc, nil
}

// strictArgs decodes command arguments, refusing unknown fields.
func strictArgs(args json.RawMessage, v any) error {
	d := json.NewDecoder(bytes.NewReader(args))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", rules.ErrBadArgument, err)
	}
	return nil
}

func registerRuleCommands(c *edge.Commands, svc *rules.Service) {
	c.Handle("alert.ack", func(ctx context.Context, args json.RawMessage, actor string) (any, error) {
		var a struct {
			AlertID string `json:"alert_id"`
			Where   string `json:"where"`
			Note    string `json:"note"`
		}
		if err := strictArgs(args, &a); err != nil {
			return nil, err
		}
		ev, err := svc.Ack(ctx, a.AlertID, actor, a.Where, a.Note)
		if err != nil {
			return nil, err
		}
		return map[string]any{"alert_id": a.AlertID, "event": ev.ID}, nil
	})
	c.Handle("alert.resolve", func(ctx context.Context, args json.RawMessage, actor string) (any, error) {
		var a struct {
			AlertID string `json:"alert_id"`
			Outcome string `json:"outcome"`
			Reason  string `json:"reason"`
			Note    string `json:"note"`
		}
		if err := strictArgs(args, &a); err != nil {
			return nil, err
		}
		ev, err := svc.Resolve(ctx, a.AlertID, actor, a.Outcome, a.Reason, a.Note)
		if err != nil {
			return nil, err
		}
		return map[string]any{"alert_id": a.AlertID, "outcome": a.Outcome, "event": ev.ID}, nil
	})
	c.Handle("elder.mode", func(ctx context.Context, args json.RawMessage, actor string) (any, error) {
		var a struct {
			Household string  `json:"household"`
			Mode      string  `json:"mode"`
			Until     string  `json:"until"`
			Hours     float64 `json:"hours"`
			Note      string  `json:"note"`
		}
		if err := strictArgs(args, &a); err != nil {
			return nil, err
		}
		until, err := rules.ParseUntil(svc.Now(), a.Until, a.Hours)
		if err != nil {
			return nil, err
		}
		ev, err := svc.SetMode(ctx, a.Household, a.Mode, until, actor, a.Note)
		if err != nil {
			return nil, err
		}
		res := map[string]any{"household": a.Household, "mode": a.Mode, "event": ev.ID}
		if !until.IsZero() {
			res["until"] = until
		}
		return res, nil
	})
}
