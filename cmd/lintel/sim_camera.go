//go:build !no_rtsp

package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/lintel-edge/lintel/drivers/rtsp/fakecam"
	"github.com/lintel-edge/lintel/edge/config"
)

func init() {
	simCommands["camera"] = subcommand{
		summary: "simulate an RTSP camera or peephole: H.264/H.265 test video + ONVIF metadata with scripted events",
		run:     runSimCamera,
	}
}

func runSimCamera(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("sim camera", std)
	listen := fs.String("listen", "127.0.0.1:8554", "RTSP listen address (0.0.0.0:8554 to serve the LAN)")
	path := fs.String("path", "/stream1", "stream path")
	user := fs.String("user", "", "require digest authentication with this user")
	passFile := fs.String("password-file", "", "file holding the password for -user (keeps it out of ps and shell history)")
	pass := fs.String("password", "", "password for -user (prefer -password-file)")
	codec := fs.String("codec", "h264", "video codec: h264 or h265")
	fps := fs.Int("fps", 10, "frames per second")
	bitrate := fs.Int("bitrate", 0, "pad the video to this many bit/s (load tests, e.g. 4000000)")
	gz := fs.Bool("gzip", false, "serve metadata as vnd.onvif.metadata.gzip")
	noMeta := fs.Bool("no-metadata", false, "serve video only")
	udp := fs.Bool("udp", false, "also offer RTP over UDP (on a free port pair; TCP is always offered)")
	snapshots := fs.String("snapshot-listen", "", "also serve a JPEG at http://ADDR/snapshot.jpg (same credentials), e.g. 127.0.0.1:8080")
	onvif := fs.Bool("onvif", false, "also serve ONVIF device/media services (snapshot URI, WS-Security) on the -snapshot-listen address")
	onvifDigest := fs.Bool("onvif-digest", false, "with -onvif: refuse WS-Security with 401 and want HTTP Digest, as some firmwares do")
	events := fs.String("events", "falling@5s,tamper@15s,visitor@25s", "scripted events kind@offset, repeated every -loop; kinds: "+strings.Join(fakecam.Kinds, ", "))
	loop := fs.Duration("loop", 30*time.Second, "repeat the script with this period (0: once)")
	stall := fs.String("stall", "", "stall the video for a while in each loop, offset+length like 20s+6s (camera.video_lost)")
	restart := fs.Duration("restart-every", 0, "restart the server (dropping sessions) with this period")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	password := *pass
	if *passFile != "" {
		b, err := os.ReadFile(*passFile)
		if err != nil {
			return usageErr("-password-file: %v", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	if (*user == "") != (password == "") {
		return usageErr("-user and a password go together")
	}
	if *codec != "h264" && *codec != "h265" {
		return usageErr("-codec %q: want h264 or h265", *codec)
	}
	if *codec == "h265" && *bitrate > 0 {
		return usageErr("-bitrate pads h264 only")
	}
	script, err := fakecam.ParseScript(*events)
	if err != nil {
		return usageErr("-events: %v", err)
	}
	var stallAt, stallFor time.Duration
	if *stall != "" {
		a, b, ok := strings.Cut(*stall, "+")
		var e1, e2 error
		stallAt, e1 = time.ParseDuration(a)
		stallFor, e2 = time.ParseDuration(b)
		if !ok || e1 != nil || e2 != nil || stallFor <= 0 {
			return usageErr("-stall %q: want offset+length like 20s+6s", *stall)
		}
	}
	log := slog.New(slog.NewTextHandler(std.err, nil))
	cam, err := fakecam.Start(fakecam.Options{
		Addr: *listen, Path: *path, User: *user, Password: password, FPS: *fps, Bitrate: *bitrate,
		Gzip: *gz, NoMetadata: *noMeta, UDP: *udp, Snapshots: *snapshots != "", SnapshotAddr: *snapshots, Logger: log,
		Codec: *codec, ONVIF: *onvif, ONVIFDigest: *onvifDigest,
	})
	if err != nil {
		return withNextStep(err, "换一个地址或端口（-listen） use another address or port (-listen)")
	}
	defer cam.Close()
	fmt.Fprintf(std.out, "模拟摄像机 simulated camera: %s\n", config.RedactURL(cam.URL()))
	if u := cam.SnapshotURL(); u != "" {
		fmt.Fprintf(std.out, "快照 snapshot: %s\n", u)
	}
	if u := cam.ONVIFURL(); u != "" {
		fmt.Fprintf(std.out, "ONVIF 设备服务 device service: %s (onvif_url)\n", u)
	}
	fmt.Fprintf(std.out, "脚本 script: %s, 每 every %s\n", *events, *loop)
	fmt.Fprintln(std.out, "命令 commands on stdin: "+strings.Join(fakecam.Kinds, " ")+" stall resume freeze thaw drop restart")

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	say := func(format string, a ...any) {
		fmt.Fprintf(std.out, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
	}
	wg.Go(func() {
		cam.RunScript(ctx, script, *loop, func(s fakecam.ScriptStep) { say("事件 event %s", s.Kind) })
	})
	if stallFor > 0 {
		wg.Go(func() { stallLoop(ctx, cam, stallAt, stallFor, *loop, say) })
	}
	if *restart > 0 {
		wg.Go(func() {
			t := time.NewTicker(*restart)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					say("重启 restarting server")
					if err := cam.Restart(time.Second); err != nil {
						say("重启失败 restart failed: %v", err)
					}
				}
			}
		})
	}
	if std.in != nil {
		lines := make(chan string)
		// Not waited for: a read of stdin cannot be interrupted. It ends
		// with stdin or the process and never blocks past ctx.
		go func() {
			sc := bufio.NewScanner(std.in)
			for sc.Scan() {
				select {
				case lines <- strings.TrimSpace(sc.Text()):
				case <-ctx.Done():
					return
				}
			}
		}()
		for {
			select {
			case <-ctx.Done():
				return nil
			case l := <-lines:
				simCameraCommand(cam, l, say)
			}
		}
	}
	<-ctx.Done()
	return nil
}

func simCameraCommand(cam *fakecam.Camera, l string, say func(string, ...any)) {
	switch l {
	case "":
	case "stall":
		cam.StallVideo(true)
		say("视频停止 video stalled (session stays up)")
	case "resume":
		cam.StallVideo(false)
		say("视频恢复 video resumed")
	case "freeze":
		cam.StallAll(true)
		say("全部停止 everything stalled (readers will time out)")
	case "thaw":
		cam.StallAll(false)
		say("恢复 stream resumed")
	case "drop":
		cam.DropNextMetadataPacket()
		say("下一个元数据文档将丢包 next metadata document loses a packet")
	case "restart":
		if err := cam.Restart(time.Second); err != nil {
			say("重启失败 restart failed: %v", err)
		} else {
			say("已重启 restarted")
		}
	default:
		if err := cam.Trigger(l); err != nil {
			say("未知命令 unknown command %q", l)
		} else {
			say("事件 event %s", l)
		}
	}
}

func stallLoop(ctx context.Context, cam *fakecam.Camera, at, length, loop time.Duration, say func(string, ...any)) {
	for {
		start := time.Now()
		for _, step := range []struct {
			at time.Duration
			on bool
		}{{at, true}, {at + length, false}} {
			t := time.NewTimer(time.Until(start.Add(step.at)))
			select {
			case <-ctx.Done():
				t.Stop()
				cam.StallVideo(false)
				return
			case <-t.C:
			}
			cam.StallVideo(step.on)
			if step.on {
				say("视频停止 video stalled for %s", length)
			} else {
				say("视频恢复 video resumed")
			}
		}
		if loop <= 0 {
			return
		}
		t := time.NewTimer(time.Until(start.Add(loop)))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
