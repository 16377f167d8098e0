package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/sipguard/sipguard/internal/testutil"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReportChromium opens the report of the attack log in a real headless
// Chromium (Debian's chromium package) inside a network namespace that
// holds only loopback, so no request could leave, and checks what it drew,
// light and dark: the page rendered, with the compromise box and the
// charts' colours; and from Chromium's network log, that the page asked
// for nothing. A page that does load something from the network is caught
// by the same check (the control at the end).
func TestReportChromium(t *testing.T) {
	needRoot(t)
	testutil.NeedCommands(t, "apt-get install chromium; .ci/run installs it", "chromium")
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	if _, errOut, code := run(t, "", "report", "--parser", "asterisk", "-o", page, attackLog); code != 0 {
		t.Fatalf("report: %d %s", code, errOut)
	}
	ns := netns(t)

	for _, c := range []struct {
		name     string
		dark     bool
		bg       color.RGBA
		palette  map[string]color.RGBA // what must be drawn, by what it is
		minCount int
	}{
		{"light", false, rgb(0xffffff), map[string]color.RGBA{
			"auth_failed bars (timeline)": rgb(0xd1495b), "address bars": rgb(0x3568b8), "compromise box": rgb(0xfee4e2),
		}, 400},
		{"dark", true, rgb(0x0d1117), map[string]color.RGBA{
			"auth_failed bars (timeline)": rgb(0xff7b8a), "address bars": rgb(0x6ca4f8), "compromise box": rgb(0x3d1214),
		}, 400},
	} {
		shot, requests := chromiumShot(t, chromium, ns, dir, c.name, page, c.dark)
		if len(requests) > 0 {
			t.Errorf("%s: the page made requests: %q", c.name, requests)
		}
		b := shot.Bounds()
		if b.Dx() < 1000 || b.Dy() < 2000 {
			t.Fatalf("%s: screenshot %v", c.name, b)
		}
		if got := shot.At(2, 2); !near(got, c.bg) {
			t.Errorf("%s: background %v, want %v", c.name, got, c.bg)
		}
		colours := map[color.RGBA]bool{}
		counts := map[string]int{}
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				p := shot.At(x, y)
				r, g, bl, _ := p.RGBA()
				colours[color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), 255}] = true
				for what, want := range c.palette {
					if near(p, want) {
						counts[what]++
					}
				}
			}
		}
		if len(colours) < 50 {
			t.Errorf("%s: %d colours: blank or unstyled", c.name, len(colours))
		}
		for what := range c.palette {
			if counts[what] < c.minCount {
				t.Errorf("%s: %s: %d pixels, want at least %d", c.name, what, counts[what], c.minCount)
			}
		}
		t.Logf("%s: %v, %d colours, %v", c.name, b, len(colours), counts)
	}

	// The control: a page that loads an image and a style from the
	// network, without our policy, is seen asking.
	leak := filepath.Join(dir, "leak.html")
	os.WriteFile(leak, []byte(`<!DOCTYPE html><img src="http://192.0.2.1/x.png"><link rel="stylesheet" href="https://198.51.100.1/a.css">leak`), 0o644)
	if _, requests := chromiumShot(t, chromium, ns, dir, "leak", leak, false); len(requests) < 2 {
		t.Errorf("the control page's requests were not seen: %q", requests)
	}
}

// chromiumShot screenshots page in ns and returns the picture and the URLs
// the page requested (Chromium's own background requests, which have no
// origin, left out).
func chromiumShot(t *testing.T, chromium, ns, dir, name, page string, dark bool) (image.Image, []string) {
	t.Helper()
	shot, netlog := filepath.Join(dir, name+".png"), filepath.Join(dir, name+".netlog.json")
	// Chromium itself crashed (SIGTRAP) beside other packages' tests,
	// once, and on 2026-12-04 twice in a row (passing 5 of 5 alone right
	// after): a browser killed by a signal gets up to two more tries, each
	// with a fresh profile; any other failure fails the test, and so does
	// a third crash.
	for try := 1; ; try++ {
		args := []string{"netns", "exec", ns, chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
			"--hide-scrollbars", "--no-first-run", "--user-data-dir=" + filepath.Join(dir, fmt.Sprintf("%s.profile%d", name, try)),
			"--log-net-log=" + netlog, "--window-size=1200,2400", "--screenshot=" + shot}
		if dark {
			args = append(args, "--force-dark-mode")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		cmd := exec.CommandContext(ctx, "ip", append(args, "file://"+page)...)
		cmd.WaitDelay = 10 * time.Second
		out, err := cmd.CombinedOutput()
		// Read before cancel, which sets it: a browser killed for the
		// timeout is no crash.
		timedOut := ctx.Err() != nil
		cancel()
		if err == nil {
			break
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) && try < 3 && !timedOut && killedBySignal(ee) {
			t.Logf("%s: chromium crashed (%v); once more\n%s", name, err, out)
			continue
		}
		t.Fatalf("%s: chromium: %v\n%s", name, err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("%s: no screenshot: %v", name, err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return img, pageRequests(t, netlog)
}

// pageRequests reads a Chromium net log: the URLs of requests a page
// initiated (initiator "null" for a file:// page, or an origin).
func pageRequests(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("net log: %v", err)
	}
	var log struct {
		Events []struct {
			Params struct {
				URL       string `json:"url"`
				Initiator string `json:"initiator"`
			} `json:"params"`
		} `json:"events"`
	}
	if err := json.Unmarshal(data, &log); err != nil {
		t.Fatalf("net log: %v", err)
	}
	seen := map[string]bool{}
	var out []string
	for _, e := range log.Events {
		p := e.Params
		if p.URL == "" || p.Initiator == "" || p.Initiator == "not an origin" || seen[p.URL] {
			continue
		}
		seen[p.URL] = true
		out = append(out, fmt.Sprintf("%s (from %s)", p.URL, p.Initiator))
	}
	return out
}

func rgb(v uint32) color.RGBA {
	return color.RGBA{uint8(v >> 16), uint8(v >> 8), uint8(v), 255}
}

// near reports whether c is want, give or take anti-aliasing and colour
// management.
func near(c color.Color, want color.RGBA) bool {
	r, g, b, _ := c.RGBA()
	d := func(x uint32, y uint8) bool { return max(int(x>>8), int(y))-min(int(x>>8), int(y)) <= 6 }
	return d(r, want.R) && d(g, want.G) && d(b, want.B)
}

// killedBySignal reports whether the process ended by a signal (for
// `ip netns exec`, which execs the command, the browser's own).
func killedBySignal(ee *exec.ExitError) bool {
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}

// TestChromiumShotRetriesCrash runs chromiumShot with a stand-in for
// Chromium that kills itself with SIGTRAP, as Chromium did under CI's load,
// the first two times, then draws its screenshot: it must be tried again,
// each time with a profile of its own. (On 2026-12-04 the retry never
// happened: the timeout's context was cancelled before it was read, so
// every crash looked like a timeout.)
func TestChromiumShotRetriesCrash(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	png1 := filepath.Join(dir, "one.png")
	f, err := os.Create(png1)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, image.NewRGBA(image.Rect(0, 0, 4, 4))); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	tries := filepath.Join(dir, "tries")
	fake := filepath.Join(dir, "chromium")
	script := `#!/bin/sh
echo "$@" >>'` + tries + `'
[ "$(wc -l <'` + tries + `')" -le 2 ] && kill -TRAP $$
for a; do
	case $a in
	--screenshot=*) cp '` + png1 + `' "${a#--screenshot=}" ;;
	--log-net-log=*) echo '{"events":[]}' >"${a#--log-net-log=}" ;;
	esac
done
`
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	shot, requests := chromiumShot(t, fake, netns(t), dir, "fake", filepath.Join(dir, "page.html"), false)
	if b := shot.Bounds(); b.Dx() != 4 || len(requests) != 0 {
		t.Errorf("screenshot %v, requests %q: not the stand-in's", b, requests)
	}
	data, err := os.ReadFile(tries)
	if err != nil {
		t.Fatal(err)
	}
	launches := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(launches) != 3 {
		t.Fatalf("%d launches, want 3 (two crashes, then the screenshot):\n%s", len(launches), data)
	}
	profiles := map[string]bool{}
	for _, l := range launches {
		for _, a := range strings.Fields(l) {
			if strings.HasPrefix(a, "--user-data-dir=") {
				profiles[a] = true
			}
		}
	}
	if len(profiles) != 3 {
		t.Errorf("profiles %v: want a fresh one for each try", profiles)
	}
}
