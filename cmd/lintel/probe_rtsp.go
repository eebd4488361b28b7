//go:build !no_rtsp

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/lintel-edge/lintel/drivers/rtsp"
	"github.com/lintel-edge/lintel/edge/config"
)

func init() {
	probeCommands["rtsp"] = subcommand{
		summary: "test a camera: tracks, codec, fps and bitrate, ONVIF metadata topics (URL or -c FILE -device ID)",
		run:     runProbeRTSP,
	}
}

func runProbeRTSP(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("probe rtsp", std)
	duration := fs.Duration("duration", 5*time.Second, "how long to measure the stream")
	timeout := fs.Duration("timeout", 5*time.Second, "connect and request timeout")
	transport := fs.String("transport", "", "tcp, udp or auto (default: the device's option, else tcp)")
	cfgFile := fs.String("c", "", "configuration file: probe a configured device (with -device)")
	devID := fs.String("device", "", "device id in -c to probe (its address, credentials and profile)")
	profile := fs.String("profile", "", "camera profile to show how topics map to events (default: the device's)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	allowBasic := fs.Bool("allow-basic-auth", false, "send the password as Basic authentication over plain rtsp:// if the camera asks (it crosses the network in clear); default: Digest only")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "用法 usage: lintel probe rtsp [flags] rtsp://user:pass@host/path")
		fmt.Fprintln(fs.Output(), "           lintel probe rtsp [flags] -c /etc/lintel/lintel.yaml -device cam-1")
		fs.PrintDefaults()
	}
	// Flags may come before or after the URL.
	var rawURL string
	rest := args
	for {
		if err := parseArgs(fs, rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		if rawURL != "" {
			return usageErr("unexpected argument %q", fs.Arg(1))
		}
		rawURL, rest = fs.Arg(0), fs.Args()[1:]
	}
	cfg := config.New()
	if *cfgFile != "" {
		var err error
		if cfg, err = loadConfig(*cfgFile); err != nil {
			return err
		}
	}
	if *devID != "" {
		if *cfgFile == "" {
			return usageErr("-device needs -c FILE")
		}
		var dev *config.Device
		for i := range cfg.Devices {
			if cfg.Devices[i].ID == *devID {
				dev = &cfg.Devices[i]
			}
		}
		if dev == nil || dev.Driver != rtsp.Name {
			return usageErr("no rtsp device %q in %s", *devID, *cfgFile)
		}
		u, tr, err := rtsp.DeviceURL(*dev)
		if err != nil {
			return configErr(err)
		}
		rawURL = u
		if rtsp.DeviceAllowsBasic(*dev) {
			*allowBasic = true
		}
		if *transport == "" {
			*transport = tr
		}
		if *profile == "" {
			*profile = dev.Profile
		}
	}
	if rawURL == "" {
		return usageErr("give a camera URL (rtsp://user:pass@host/path) or -c FILE -device ID")
	}
	if !strings.HasPrefix(rawURL, "rtsp://") && !strings.HasPrefix(rawURL, "rtsps://") {
		return usageErr("%q is not an rtsp:// or rtsps:// URL", config.RedactURL(rawURL))
	}
	var prof *rtsp.Profile
	if *profile != "" {
		var err error
		if prof, err = rtsp.LoadProfile(cfg, *profile); err != nil {
			return configErr(err)
		}
	}
	fmt.Fprintf(std.err, "正在连接 connecting to %s, 测量 measuring for %s …\n", config.RedactURL(rawURL), *duration)
	rep, err := rtsp.Probe(ctx, rtsp.ProbeOptions{URL: rawURL, Transport: *transport, Duration: *duration, Timeout: *timeout,
		AllowBasicAuth: *allowBasic, OnBasic: func() {
			fmt.Fprintln(std.err, "警告 WARNING: 密码以 Basic 明文发送 the camera password was sent in clear (Basic authentication over plain rtsp://)")
		}})
	if *asJSON {
		out := struct {
			*rtsp.ProbeReport
			Error string `json:"error,omitempty"`
		}{ProbeReport: rep}
		if err != nil {
			out.Error = err.Error()
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintln(std.out, string(b))
		if err != nil {
			return &exitError{exitFailure, err}
		}
		return nil
	}
	printProbe(std, rep, prof)
	if err != nil {
		return fmt.Errorf("探测失败 probe failed: %w", err)
	}
	return nil
}

func printProbe(std stdio, r *rtsp.ProbeReport, prof *rtsp.Profile) {
	w := std.out
	fmt.Fprintf(w, "摄像机 camera: %s\n", r.URL)
	if len(r.Tracks) > 0 {
		fmt.Fprintln(w, "轨道 tracks:")
		for _, t := range r.Tracks {
			use := "  "
			if t.Used {
				use = "✓ "
			}
			fmt.Fprintf(w, "  %s%-12s %-16s %s\n", use, t.Type, t.Codec, t.RTPMap)
		}
	}
	if r.Frames == 0 && r.Packets == 0 {
		return
	}
	fmt.Fprintf(w, "视频 video: %s %dx%d, 传输 transport %s\n", r.Codec, r.Width, r.Height, r.Transport)
	fmt.Fprintf(w, "测量 measured over %.1fs: %.1f fps, %.0f kbit/s, 关键帧间隔 keyframe every %.1fs, RTP 丢包 lost %d\n",
		r.Seconds, r.FPS, r.BitrateBps/1000, r.GOPSeconds, r.Lost)
	if r.Keyframes == 0 {
		fmt.Fprintln(w, "警告 warning: 未收到关键帧 no keyframe received: clips need one at least every few seconds (set the camera's I-frame interval to 1–2 s)")
	}
	fmt.Fprintf(w, "元数据 ONVIF metadata: %d 文档 documents (%d 无效 bad), %d 目标 objects\n", r.Documents, r.BadDocs, r.Objects)
	if !hasMetadataTrack(r) {
		fmt.Fprintln(w, "  摄像机没有元数据轨道 no metadata track: enable ONVIF metadata/events in the stream profile of the camera")
	}
	if len(r.Topics) == 0 {
		fmt.Fprintln(w, "  未见事件 no events seen (trigger one in front of the camera while probing)")
		return
	}
	fmt.Fprintln(w, "事件主题 event topics:")
	for _, t := range r.TopicList() {
		mapped := ""
		if prof != nil {
			switch rule, ignored := prof.Rule(t); {
			case ignored:
				mapped = "→ 忽略 ignored"
			case rule != nil:
				mapped = "→ " + rule.Kind
			default:
				mapped = "→ camera.event (未映射 unmapped)"
			}
		}
		fmt.Fprintf(w, "  %4d× %s %s\n", r.Topics[t], t, mapped)
	}
}

func hasMetadataTrack(r *rtsp.ProbeReport) bool {
	for _, t := range r.Tracks {
		if t.Codec == "ONVIF metadata" {
			return true
		}
	}
	return false
}
