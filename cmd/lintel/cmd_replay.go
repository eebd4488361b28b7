package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"

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
	outFile := fs.String("out", "", "write the derived events (alerts, escalations, no-data, hints, presence) here as JSON lines, with ids and seqs continuing the input's")
	truth := fs.String("truth", "", "ground truth from `lintel sim elders` (truth.json): print detection and false-alert figures")
	compare := fs.Bool("compare", false, "replay the log twice in this run, with the engine before issue 12 (legacy) and with the configured settings, and print the figures side by side (--out gets the configured run's events)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *events == "" {
		return usageErr("--events is required: a JSON lines event log, e.g. from `lintel sim elders --out DIR` (DIR/events.jsonl)")
	}
	if *compare && *events == "-" {
		return usageErr("--compare reads the log twice: give a file with --events, not -")
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
	var p *rules.Population
	if *truth != "" {
		if p, err = readTruth(*truth); err != nil {
			return err
		}
		p.Settings = settings
	}
	// The output file is created before the replay, so a bad path fails
	// at once rather than after minutes of work.
	var outF *os.File
	if *outFile != "" {
		if outF, err = os.Create(*outFile); err != nil {
			return withNextStep(fmt.Errorf("create %s: %w", *outFile, err), "检查 --out 所在目录是否存在且可写 check that the directory of --out exists and is writable")
		}
		defer outF.Close()
	}
	keep := *truth != "" || *outFile != ""
	stamp := func(ev *event.Event) {
		ev.Gateway, ev.Compound, ev.TimeQuality = cfg.Gateway.ID, cfg.Gateway.Compound, event.Synced
	}
	var after, before replayRun
	if *compare {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			before = replayLog(ctx, rules.LegacySettings(settings), *events, std.in, stamp, *truth != "")
		}()
		after = replayLog(ctx, settings, *events, std.in, stamp, keep)
		wg.Wait()
		if before.err != nil {
			return before.err
		}
	} else {
		after = replayLog(ctx, settings, *events, std.in, stamp, keep)
	}
	if after.err != nil {
		return after.err
	}
	st := after.st
	if outF != nil {
		if err := writeDerived(outF, after); err != nil {
			return fmt.Errorf("write %s: %w", *outFile, err)
		}
	}
	fmt.Fprintf(std.out, "回放完成 replayed %d events in %s: %d derived events\n", st.Events, st.Elapsed.Round(1e6), st.Derived)
	if *compare {
		fmt.Fprintf(std.out, "  (legacy engine, same run: %d derived events in %s)\n", before.st.Derived, before.st.Elapsed.Round(1e6))
	}
	kinds := make([]string, 0, len(st.ByKind))
	for k := range st.ByKind {
		kinds = append(kinds, string(k))
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(std.out, "  %-26s %d\n", k, st.ByKind[event.Kind(k)])
	}
	if *compare {
		fmt.Fprintf(std.out, "告警（按规则）alerts raised by rule:  %8s %8s\n", "before", "after")
		for _, r := range rules.AllRules {
			if a, b := before.st.ByRule[r], st.ByRule[r]; a > 0 || b > 0 {
				fmt.Fprintf(std.out, "  %-26s %8d %8d\n", r, a, b)
			}
		}
	} else {
		fmt.Fprintln(std.out, "告警（按规则）alerts raised by rule:")
		for _, r := range rules.AllRules {
			if n := st.ByRule[r]; n > 0 {
				fmt.Fprintf(std.out, "  %-26s %d\n", r, n)
			}
		}
	}
	if p != nil {
		repAfter := rules.Evaluate(p, after.derived, st)
		if *compare {
			repBefore := rules.Evaluate(p, before.derived, before.st)
			fmt.Fprintf(std.out, "\n%s", rules.CompareMarkdown(repBefore, repAfter))
			fmt.Fprintf(std.out, "\nAfter, in full:\n\n%s", repAfter.Markdown())
		} else {
			fmt.Fprintf(std.out, "\n%s", repAfter.Markdown())
		}
	}
	return nil
}

// replayRun is one replay of a log: its derived events (when kept), the
// stats, and where the input ended (its last seq and event id), so the
// derived events can continue the log's numbering.
type replayRun struct {
	derived []*event.Event
	st      rules.ReplayStats
	lastSeq uint64
	lastID  string
	err     error
}

// replayLog replays the log at path (- for in) with settings s.
func replayLog(ctx context.Context, s *rules.Settings, path string, in io.Reader, stamp func(*event.Event), keep bool) (run replayRun) {
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			run.err = withNextStep(fmt.Errorf("open event log: %w", err), "检查 --events 的路径 check the path given with --events (- reads stdin)")
			return run
		}
		defer f.Close()
		in = f
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	line := 0
	run.st, run.err = rules.Replay(s, func(ev *event.Event) (bool, error) {
		for sc.Scan() {
			line++
			b := sc.Bytes()
			if len(b) == 0 {
				continue
			}
			d, err := event.Decode(b)
			if err != nil {
				return false, withNextStep(fmt.Errorf("%s:%d: %w", path, line, err), "每行应是一个 Event v1 JSON 对象：修正或删除该行 each line must be one Event v1 JSON object: fix or remove that line")
			}
			*ev = *d
			if ev.Seq > run.lastSeq {
				run.lastSeq = ev.Seq
			}
			if ev.ID != "" {
				run.lastID = ev.ID
			}
			return true, ctx.Err()
		}
		return false, sc.Err()
	}, func(ev *event.Event) error {
		stamp(ev)
		if keep {
			run.derived = append(run.derived, ev)
		}
		return nil
	})
	return run
}

// writeDerived writes a run's derived events as JSON lines, numbered as
// the store would have numbered them had they been appended to the
// replayed log: seqs from the input's last seq + 1, in order, and ids
// made the store's way (event.FormatID: gateway, the store's epoch, seq)
// with the epoch of the input's ids — or a new one, as a new store draws,
// when the input has none.
func writeDerived(f *os.File, run replayRun) error {
	epoch := ""
	if _, ep, _, err := event.ParseID(run.lastID); err == nil && ep != "" {
		epoch = ep
	} else {
		var raw [8]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return err
		}
		epoch = hex.EncodeToString(raw[:])
	}
	w := bufio.NewWriterSize(f, 1<<16)
	seq := run.lastSeq
	for _, ev := range run.derived {
		seq++
		ev.Seq, ev.ID = seq, event.FormatID(ev.Gateway, epoch, seq)
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		w.Write(b)
		w.WriteByte('\n')
	}
	return w.Flush()
}

// simTruth is truth.json as written by `lintel sim elders`.
type simTruth struct {
	Elders    int              `json:"elders"`
	Days      int              `json:"days"`
	Seed      uint64           `json:"seed"`
	Realistic bool             `json:"realistic"`
	Incidents []rules.Incident `json:"incidents"`
	Aways     []rules.Period   `json:"aways"`
	Faults    []rules.Period   `json:"faults"`
	Outages   []rules.Period   `json:"outages"`
	// Profiles and Episodes: realistic populations (issue 12).
	Profiles []rules.SimElder `json:"profiles,omitempty"`
	Episodes []rules.Period   `json:"episodes,omitempty"`
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
	return &rules.Population{Options: rules.SimOptions{Elders: t.Elders, Days: t.Days, Seed: t.Seed, Realistic: t.Realistic},
		Incidents: t.Incidents, Aways: t.Aways, Faults: t.Faults, Outages: t.Outages, Elders: t.Profiles, Episodes: t.Episodes}, nil
}
