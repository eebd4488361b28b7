package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/rules"
)

func init() {
	register(command{name: "replay", summary: "run the elder rules over a recorded event log (lintel replay -c FILE --events LOG.jsonl)", run: runReplay})
}

func runReplay(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("replay", std)
	file := fs.String("c", "/etc/lintel/lintel.yaml", "configuration file (its rules section and elders are used)")
	events := fs.String("events", "", "event log to replay, one Event v1 JSON object per line (- for stdin)")
	outFile := fs.String("out", "", "write the derived events (alerts, escalations, no-data, hints, presence) here as JSON lines")
	truth := fs.String("truth", "", "ground truth from `lintel sim elders` (truth.json): print detection and false-alert figures")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *events == "" {
		return usageErr("--events is required: a JSON lines event log, e.g. from `lintel sim elders --out DIR` (DIR/events.jsonl)")
	}
	cfg, err := loadConfig(*file)
	if err != nil {
		return configNextStep(*file, err)
	}
	settings := rules.FromConfig(cfg)
	if len(settings.Elders) == 0 {
		return configErr(withNextStep(fmt.Errorf("%s: no elders under rules.elders: nothing to replay", *file),
			"在 rules.elders 下登记老人，或使用 `lintel sim elders` 生成的配置 list the elders under rules.elders, or use the configuration `lintel sim elders` writes"))
	}
	var in io.Reader = std.in
	if *events != "-" {
		f, err := os.Open(*events)
		if err != nil {
			return withNextStep(fmt.Errorf("open event log: %w", err), "检查 --events 的路径 check the path given with --events (- reads stdin)")
		}
		defer f.Close()
		in = f
	}
	var out *bufio.Writer
	if *outFile != "" {
		f, err := os.Create(*outFile)
		if err != nil {
			return withNextStep(fmt.Errorf("create %s: %w", *outFile, err), "检查 --out 所在目录是否存在且可写 check that the directory of --out exists and is writable")
		}
		defer f.Close()
		out = bufio.NewWriterSize(f, 1<<16)
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	line := 0
	var derived []*event.Event
	st, err := rules.Replay(settings, func(ev *event.Event) (bool, error) {
		for sc.Scan() {
			line++
			b := sc.Bytes()
			if len(b) == 0 {
				continue
			}
			d, err := event.Decode(b)
			if err != nil {
				return false, withNextStep(fmt.Errorf("%s:%d: %w", *events, line, err), "每行应是一个 Event v1 JSON 对象：修正或删除该行 each line must be one Event v1 JSON object: fix or remove that line")
			}
			*ev = *d
			return true, ctx.Err()
		}
		return false, sc.Err()
	}, func(ev *event.Event) error {
		ev.Gateway, ev.Compound, ev.TimeQuality = cfg.Gateway.ID, cfg.Gateway.Compound, event.Synced
		if *truth != "" {
			derived = append(derived, ev)
		}
		if out == nil {
			return nil
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		out.Write(b)
		return out.WriteByte('\n')
	})
	if err != nil {
		return err
	}
	if out != nil {
		if err := out.Flush(); err != nil {
			return fmt.Errorf("write %s: %w", *outFile, err)
		}
	}
	fmt.Fprintf(std.out, "回放完成 replayed %d events in %s: %d derived events\n", st.Events, st.Elapsed.Round(1e6), st.Derived)
	kinds := make([]string, 0, len(st.ByKind))
	for k := range st.ByKind {
		kinds = append(kinds, string(k))
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(std.out, "  %-26s %d\n", k, st.ByKind[event.Kind(k)])
	}
	fmt.Fprintln(std.out, "告警（按规则）alerts raised by rule:")
	for _, r := range rules.AllRules {
		if n := st.ByRule[r]; n > 0 {
			fmt.Fprintf(std.out, "  %-26s %d\n", r, n)
		}
	}
	if *truth != "" {
		p, err := readTruth(*truth)
		if err != nil {
			return err
		}
		fmt.Fprintf(std.out, "\n%s", rules.Evaluate(p, derived, st).Markdown())
	}
	return nil
}

// simTruth is truth.json as written by `lintel sim elders`.
type simTruth struct {
	Elders    int              `json:"elders"`
	Days      int              `json:"days"`
	Seed      uint64           `json:"seed"`
	Incidents []rules.Incident `json:"incidents"`
	Aways     []rules.Period   `json:"aways"`
	Faults    []rules.Period   `json:"faults"`
	Outages   []rules.Period   `json:"outages"`
}

func readTruth(path string) (*rules.Population, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, withNextStep(fmt.Errorf("read truth: %w", err), "检查 --truth 的路径（`lintel sim elders` 写出的 truth.json） check the --truth path (the truth.json `lintel sim elders` writes)")
	}
	var t simTruth
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, withNextStep(fmt.Errorf("%s: %w", path, err), "用 `lintel sim elders` 重新生成 regenerate it with `lintel sim elders`")
	}
	if t.Elders == 0 || t.Days == 0 {
		return nil, withNextStep(errors.New(path+": not a truth file from `lintel sim elders`"), "给出 `lintel sim elders --out DIR` 写出的 DIR/truth.json give the DIR/truth.json that `lintel sim elders --out DIR` writes")
	}
	return &rules.Population{Options: rules.SimOptions{Elders: t.Elders, Days: t.Days, Seed: t.Seed},
		Incidents: t.Incidents, Aways: t.Aways, Faults: t.Faults, Outages: t.Outages}, nil
}
