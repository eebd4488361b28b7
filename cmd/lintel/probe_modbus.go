package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/lintel-edge/lintel/drivers/modbus"
	"github.com/lintel-edge/lintel/edge/config"
)

func init() {
	probeCommands["modbus"] = subcommand{
		summary: "scan a Modbus bus for unit ids (and RTU baud/parity), or read a profile once",
		run:     runProbeModbus,
	}
}

func runProbeModbus(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("probe modbus", std)
	addr := fs.String("a", "", "bus address: rtu:///dev/ttyUSB0, tcp://host:502 or rtuovertcp://host:4001")
	bauds := fs.String("baud", "9600", "RTU baud rate(s) to try, comma-separated (e.g. 9600,19200,115200)")
	parities := fs.String("parity", "none", "RTU parity(ies) to try: none, even, odd, comma-separated")
	stopBits := fs.Int("stop-bits", 1, "RTU stop bits")
	units := fs.String("units", "1-32", "unit ids to scan: 1-247, or a list like 1,2,5-9")
	unit := fs.Int("unit", 0, "read this unit once with -profile instead of scanning")
	profile := fs.String("profile", "", "profile to read with -unit (built-in name, or one in -profiles)")
	profDir := fs.String("profiles", "", "extra directory of profiles")
	timeout := fs.Duration("timeout", 300*time.Millisecond, "per-request timeout")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *addr == "" {
		return usageErr("-a is required, e.g. -a rtu:///dev/ttyUSB0")
	}
	var bl []int
	for _, b := range strings.Split(*bauds, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(b))
		if err != nil || n <= 0 {
			return usageErr("-baud %q: want numbers like 9600,19200", *bauds)
		}
		bl = append(bl, n)
	}
	pl := strings.Split(*parities, ",")
	for _, p := range pl {
		if p != "none" && p != "even" && p != "odd" {
			return usageErr("-parity %q: want none, even or odd", p)
		}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rtu := strings.HasPrefix(*addr, "rtu://")
	if !rtu {
		bl, pl = bl[:1], pl[:1]
	}

	if *unit != 0 || *profile != "" {
		if *unit < 1 || *unit > 247 || *profile == "" {
			return usageErr("reading once needs -unit 1–247 and -profile")
		}
		cfg := config.New()
		if *profDir != "" {
			cfg.Profiles.Dirs = []string{*profDir}
		}
		prof, err := modbus.LoadProfile(cfg, *profile)
		if err != nil {
			return configErr(fmt.Errorf("%w\n下一步 next: 检查 -profile 名称，或用 -profiles 指定存放型号文件的目录 check the -profile name, or give the directory holding it with -profiles", err))
		}
		t := modbus.ProbeTarget{Address: *addr, Baud: bl[0], Parity: pl[0], StopBits: *stopBits, Timeout: *timeout}
		vals, cnt, err := modbus.ReadOnce(ctx, t, *unit, prof, log)
		if err != nil {
			return fmt.Errorf("%w\n下一步 next: 先不带 -unit 扫描总线，确认单元号、波特率和校验位 scan the bus first (without -unit) to confirm the unit id, baud and parity", err)
		}
		fmt.Fprintf(std.out, "%s 单元 unit %d — %s\n", *addr, *unit, prof.Model)
		tw := tabwriter.NewWriter(std.out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "点位 point\t表 table\t地址 address\t原始 raw\t值 value\t读取 read")
		for _, v := range vals {
			val := strconv.FormatFloat(v.Value, 'f', -1, 64) + " " + v.Point.Unit
			if v.Err != nil {
				val = "错误 error: " + v.Err.Error()
			}
			raw := make([]string, len(v.Raw))
			for i, r := range v.Raw {
				raw[i] = fmt.Sprintf("0x%04X", r)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", v.Point.Name, v.Point.Table, v.Point.Address, strings.Join(raw, " "), val, v.Request)
		}
		tw.Flush()
		printCounts(std.out, cnt)
		return nil
	}

	ul, err := parseUnits(*units)
	if err != nil {
		return usageErr("-units: %v", err)
	}
	total := 0
	// Progress on stderr, so stdout stays the report: a live line on a
	// terminal, a line every few seconds otherwise. A full RTU scan at
	// several bauds can take minutes of timeouts.
	prog := newProgressLine(std.err, scanProgressEvery)
	steps, done, began := len(bl)*len(pl)*len(ul), 0, time.Now()
	for _, b := range bl {
		for _, p := range pl {
			t := modbus.ProbeTarget{Address: *addr, Baud: b, Parity: p, StopBits: *stopBits, Timeout: *timeout}
			setting := ""
			if rtu {
				setting = fmt.Sprintf(" %d %s", b, p)
				fmt.Fprintf(std.out, "扫描 scanning %s %d %s: 单元 units %s …\n", *addr, b, p, *units)
			} else {
				fmt.Fprintf(std.out, "扫描 scanning %s: 单元 units %s …\n", *addr, *units)
			}
			found, cnt, err := modbus.ScanUnits(ctx, t, ul, log, func(u int) {
				prog.update(fmt.Sprintf("  进度 progress %d/%d%s 单元 unit %d, 已发现 found %d, 剩余约 ETA %s",
					done, steps, setting, u, total, eta(time.Since(began), done, steps)))
				done++
			})
			prog.clear()
			if err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("扫描中断 scan interrupted after %d of %d requests: 重新运行并缩小 -units 范围 run again, narrowing -units", done, steps)
				}
				return fmt.Errorf("%w\n下一步 next: 检查地址、端口是否被占用（先停止 lintel 服务）和接线 check the address, that no other program holds the port (stop the lintel service first) and the wiring", err)
			}
			for _, f := range found {
				what := "应答 answers"
				if f.Exception != "" {
					what = "应答异常 answers with exception: " + f.Exception
				}
				if f.Late {
					what += "，但晚于超时 but only after the timeout: 调大 -timeout 或设备的 timeout raise -timeout, or the device's timeout"
				}
				fmt.Fprintf(std.out, "  单元 unit %3d  %s  (%s)\n", f.Unit, what, f.RTT.Round(100*time.Microsecond))
			}
			total += len(found)
			printCounts(std.out, cnt)
		}
	}
	if total == 0 {
		fmt.Fprintln(std.out, "未发现设备：检查 A/B 线序、终端电阻、波特率和校验位。 No device answered: check A/B wiring, termination, baud rate and parity.")
		return fmt.Errorf("no unit answered: 检查接线后重试，或用 -baud 9600,19200 -parity none,even 多试几种设置 check the wiring and try again, or try more settings with -baud 9600,19200 -parity none,even")
	}
	return nil
}

// scanProgressEvery paces the progress lines when stderr is not a terminal.
var scanProgressEvery = 5 * time.Second

func printCounts(w io.Writer, c modbus.ProbeCounts) {
	fmt.Fprintf(w, "  请求 requests %d, 应答 answers %d, 超时 timeouts %d, CRC/帧错误 CRC/framing errors %d, 异常 exceptions %d, I/O 错误 errors %d\n",
		c.Requests, c.Answers, c.Timeouts, c.CRCErrors, c.Exceptions, c.IOErrors)
	if c.CRCErrors > 0 {
		fmt.Fprintln(w, "  CRC 错误多半是波特率/校验位不对或接线干扰 CRC errors usually mean wrong baud/parity or noise on the line")
	}
}

// parseUnits parses "1-32" or "1,2,5-9".
func parseUnits(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(strings.TrimSpace(part), "-")
		lo, err := strconv.Atoi(a)
		hi := lo
		if err == nil && isRange {
			hi, err = strconv.Atoi(b)
		}
		if err != nil || lo < 1 || hi > 247 || lo > hi {
			return nil, fmt.Errorf("%q: want unit ids 1–247 like 1-32 or 1,2,5-9", part)
		}
		for u := lo; u <= hi; u++ {
			out = append(out, u)
		}
	}
	return out, nil
}
