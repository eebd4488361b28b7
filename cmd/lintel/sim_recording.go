package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/rules"
	"github.com/lintel-edge/lintel/edge/rules/recording"
)

func init() {
	simCommands["recording"] = subcommand{
		summary: "convert a real smart-home recording (Kasteren, Tapia) into an event log with injected collapses and ground truth; score a replay of it",
		run:     runSimRecording,
	}
}

// defaultZones are where the datasets were recorded.
var defaultZones = map[string]string{"kasteren": "Europe/Amsterdam", "tapia": "America/New_York"}

func runSimRecording(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("sim recording", std)
	format := fs.String("format", "", "recording format: kasteren or tapia")
	in := fs.String("in", "", "directory of the recording (kasterenSenseData.txt [+ kasterenActData.txt]; or sensors.csv + activities_data.csv)")
	out := fs.String("out", "", "write the event log here (JSON lines, the input of `lintel replay --events`)")
	truthFile := fs.String("truth", "", "ground truth file: written when converting (default: next to --out, .truth.json), read with --evaluate")
	cfgFile := fs.String("config", "", "write the matching configuration here (default: next to --out, .yaml)")
	inject := fs.Int("inject", 10, "collapses at home to inject, each in its own copy of the household (0: the recording alone)")
	injectDoor := fs.Int("inject-door", -1, "collapses right after a door cycle to inject (default: as many as --inject)")
	seed := fs.Uint64("seed", 1, "random seed of the injections (same seed, same truth)")
	zone := fs.String("zone", "", "time zone the resident lives in: an IANA name or a fixed offset like +01:00 (default: Europe/Amsterdam for kasteren, America/New_York for tapia)")
	year := fs.Int("year", 2025, "year to shift the recording to (by whole weeks: weekdays and times of day are kept)")
	name := fs.String("name", "", "trace name, the stem of the household ids (default: kasteren, tapia-<directory>)")
	door := fs.String("door", "", "sensor id of the entrance door (default: the one the sensor list names)")
	skipBad := fs.Bool("skip-bad", false, "skip malformed blocks of the recording (each is reported) instead of stopping")
	evaluate := fs.Bool("evaluate", false, "score: with --alerts, a replay's output against --truth; else convert --in, replay it here and score it (and write --out too if given)")
	alerts := fs.String("alerts", "", "with --evaluate: the derived events `lintel replay --out` wrote")
	rulesCfg := fs.String("c", "", "with --evaluate (in-process): take the rules section of this configuration (default: default settings)")
	legacy := fs.Bool("legacy", false, "with --evaluate (in-process): also score the engine as it was before learned limits and door-cycle hypotheses")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *evaluate && *alerts != "" {
		if *truthFile == "" {
			return usageErr("--evaluate --alerts needs --truth: the truth file `lintel sim recording` wrote with the log")
		}
		return evaluateFiles(*truthFile, *alerts, std)
	}
	if *format == "" || *in == "" {
		return usageErr("--format kasteren|tapia and --in DIR are required, e.g. --format kasteren --in /work/traces/kasteren --out /tmp/kasteren.jsonl (docs/traces.md)")
	}
	if *format != "kasteren" && *format != "tapia" {
		return usageErr("--format %q: want kasteren or tapia", *format)
	}
	if !*evaluate && *out == "" {
		return usageErr("--out is required: the event log to write, e.g. --out /tmp/%s.jsonl (or --evaluate to replay and score here)", *format)
	}
	if *injectDoor < 0 {
		*injectDoor = *inject
	}
	if *inject < 0 || *inject+*injectDoor > 500 {
		return usageErr("--inject and --inject-door take 0–500 together")
	}
	if *zone == "" {
		*zone = defaultZones[*format]
	}
	loc, err := parseZone(*zone)
	if err != nil {
		return withNextStep(err, "给出 IANA 时区名或固定偏移 give an IANA zone (Europe/Amsterdam) or a fixed offset (--zone +01:00); IANA names need the tzdata package")
	}
	rec, err := recording.Load(*format, *in, recording.Options{Name: *name, Door: *door, SkipBad: *skipBad})
	if err != nil {
		var pe *recording.ParseError
		switch {
		case errors.As(err, &pe) && !*skipBad && *format == "tapia":
			return withNextStep(err, "修正该行，或加 --skip-bad 跳过坏块 fix that line, or add --skip-bad to skip bad blocks (each is reported)")
		case errors.As(err, &pe):
			return withNextStep(err, "修正该行 fix that line of the recording (docs/traces.md describes the formats)")
		case strings.Contains(err.Error(), "entrance door"):
			return withNextStep(err, "用 --door ID 指定入户门传感器 name the entrance door's sensor id with --door ID")
		}
		return withNextStep(err, "检查 --in 目录和 --format check the --in directory and --format (docs/traces.md lists the files)")
	}
	for _, p := range rec.Problems {
		fmt.Fprintf(std.err, "跳过 skipped: %v\n", p)
	}
	tr, err := recording.Build(rec, recording.BuildOptions{Zone: loc, Year: *year, Collapses: *inject, DoorCollapses: *injectDoor, Seed: *seed})
	if err != nil {
		return withNextStep(err, "换一个 --year，或用固定偏移 --zone choose another --year, or a fixed offset with --zone")
	}
	ri := tr.Truth.Recording
	first, last := tr.Events[0].Time, tr.Events[len(tr.Events)-1].Time
	nBase := 0
	for _, ev := range tr.Events {
		if ev.Household == ri.Base {
			nBase++
		}
	}
	fmt.Fprintf(std.out, "已转换 converted %s (%s): %d sensors, %d firings → %d events as recorded (%d with the copies), %s – %s in %s (%s, shifted %d days); %d households: %s as recorded + %d copies with an injected collapse (%d at home, %d after a door cycle)\n",
		ri.Name, ri.Format, len(rec.Sensors), len(rec.Firings), nBase, len(tr.Events), first.In(loc).Format("Mon 2006-01-02"), last.In(loc).Format("Mon 2006-01-02"),
		ri.Zone, ri.UTCOffset, ri.ShiftDays, len(tr.Households), ri.Base, len(tr.Households)-1, countKind(tr.Truth.Incidents, rules.IncCollapse), countKind(tr.Truth.Incidents, recording.IncCollapseAfterDoor))

	if *out != "" {
		if err := writeTrace(tr, *out, *cfgFile, *truthFile, std); err != nil {
			return err
		}
	}
	if *evaluate {
		return evaluateInProcess(tr, *rulesCfg, *legacy, std)
	}
	return nil
}

// writeTrace writes the log, its configuration and its truth.
func writeTrace(tr *recording.Trace, out, cfgFile, truthFile string, std stdio) error {
	stem := strings.TrimSuffix(out, filepath.Ext(out))
	if cfgFile == "" {
		cfgFile = stem + ".yaml"
	}
	if truthFile == "" {
		truthFile = stem + ".truth.json"
	}
	if err := writeFile(out, tr.WriteEvents); err != nil {
		return err
	}
	if err := writeFile(cfgFile, func(w io.Writer) error { _, err := io.WriteString(w, tr.ConfigYAML()); return err }); err != nil {
		return err
	}
	if err := writeFile(truthFile, func(w io.Writer) error {
		b, err := json.MarshalIndent(tr.Truth, "", "  ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	}); err != nil {
		return err
	}
	fmt.Fprintf(std.out, "已写出 wrote %s, %s, %s\n", out, cfgFile, truthFile)
	fmt.Fprintf(std.out, "回放 replay: lintel replay -c %s --events %s --out %s.alerts.jsonl\n", cfgFile, out, stem)
	fmt.Fprintf(std.out, "评分 score:  lintel sim recording --evaluate --truth %s --alerts %s.alerts.jsonl\n", truthFile, stem)
	return nil
}

func countKind(incs []rules.Incident, kind string) int {
	n := 0
	for _, i := range incs {
		if i.Kind == kind {
			n++
		}
	}
	return n
}

// parseZone takes an IANA zone name or a fixed offset ("+01:00", "UTC").
func parseZone(s string) (*time.Location, error) {
	if t, err := time.Parse("-07:00", s); err == nil {
		_, off := t.Zone()
		return time.FixedZone(s, off), nil
	}
	loc, err := time.LoadLocation(s)
	if err != nil {
		return nil, fmt.Errorf("--zone %q: %w", s, err)
	}
	return loc, nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return withNextStep(fmt.Errorf("create %s: %w", path, err), "检查输出目录是否存在且可写 check that the directory of --out (--config, --truth) exists and is writable")
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// evaluateInProcess replays the trace with the default settings (or the
// rules section of cfgFile) and prints the scores.
func evaluateInProcess(tr *recording.Trace, cfgFile string, legacy bool, std stdio) error {
	settings := tr.Settings()
	if cfgFile != "" {
		cfg, err := loadConfig(cfgFile)
		if err != nil {
			return configNextStep(cfgFile, err)
		}
		s := *rules.FromConfig(cfg)
		known := map[string]bool{}
		for _, el := range s.Elders {
			known[el.Household] = true
		}
		for _, h := range tr.Households {
			if !known[h] {
				return configErr(withNextStep(fmt.Errorf("%s: household %s of the trace is not under rules.elders", cfgFile, h),
					"用 `lintel sim recording --out FILE` 写出的配置作为起点 start from the configuration `lintel sim recording --out FILE` writes (FILE.yaml)"))
			}
		}
		settings = &s
	}
	runs := []bool{false}
	if legacy {
		runs = []bool{true, false}
	}
	for _, lg := range runs {
		s := *settings
		s.Legacy = lg
		derived, st, err := tr.Replay(&s)
		if err != nil {
			return err
		}
		title := "rules on this build"
		if lg {
			title = "legacy rules (fixed limits; before issue 12)"
		}
		fmt.Fprintf(std.out, "\n%s — replayed %d events in %s, %d derived\n\n%s", title, st.Events, st.Elapsed.Round(time.Millisecond), st.Derived,
			recording.Evaluate(&tr.Truth, derived).Markdown())
	}
	return nil
}

// evaluateFiles scores the derived events `lintel replay --out` wrote.
func evaluateFiles(truthFile, alertsFile string, std stdio) error {
	b, err := os.ReadFile(truthFile)
	if err != nil {
		return withNextStep(fmt.Errorf("read truth: %w", err), "检查 --truth 的路径（`lintel sim recording` 写出的 .truth.json） check the --truth path (the .truth.json `lintel sim recording` writes)")
	}
	var tr recording.Truth
	if err := json.Unmarshal(b, &tr); err != nil || tr.Recording.Base == "" {
		if err == nil {
			err = errors.New("not a truth file of `lintel sim recording` (no recording.base)")
		}
		return withNextStep(fmt.Errorf("%s: %w", truthFile, err), "用 `lintel sim recording --out FILE` 重新生成 regenerate it with `lintel sim recording --out FILE`")
	}
	f, err := os.Open(alertsFile)
	if err != nil {
		return withNextStep(fmt.Errorf("open alerts: %w", err), "先回放并写出派生事件 replay first and write the derived events: lintel replay -c FILE.yaml --events FILE.jsonl --out FILE.alerts.jsonl")
	}
	defer f.Close()
	var derived []*event.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for line := 1; sc.Scan(); line++ {
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		ev, err := event.Decode(sc.Bytes())
		if err != nil {
			return withNextStep(fmt.Errorf("%s:%d: %w", alertsFile, line, err), "每行应是一个 Event v1 JSON 对象（`lintel replay --out` 的输出） each line must be one Event v1 JSON object (what `lintel replay --out` writes)")
		}
		derived = append(derived, ev)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", alertsFile, err)
	}
	fmt.Fprint(std.out, recording.Evaluate(&tr, derived).Markdown())
	return nil
}
