package report_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/config"
	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/replay"
	"github.com/sipguard/sipguard/report"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// generated is the fixed time golden reports say they were made.
var generated = time.Date(2026, 3, 3, 8, 0, 0, 0, time.UTC)

// build reports on a log with the default configuration (rules.toml), as
// `sipguard report --parser NAME` does.
func build(t testing.TB, path, parser string, opts report.Options) *report.Report {
	return buildWith(t, path, parser, opts, nil)
}

// buildWith is build with the engine's options changed by change.
func buildWith(t testing.TB, path, parser string, opts report.Options, change func(*engine.Options)) *report.Report {
	t.Helper()
	cfg := config.DefaultConfig()
	eo, err := cfg.EngineOptions(func() ([]netip.Prefix, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	if change != nil {
		change(&eo)
	}
	eng, err := engine.New(eo)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := replay.Start(context.Background(), []replay.Source{{
		Name: filepath.Base(path), Parser: parser, Factory: cfg.ParserFactory(parser), Location: time.UTC, Reader: f,
	}}, replay.Options{Now: func() time.Time { return generated }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if opts.Generated.IsZero() {
		opts.Generated = generated
	}
	c := report.NewCollector(eng, opts)
	for ev := r.Next(); ev != nil; ev = r.Next() {
		c.Add(ev)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return c.Report(r.Stats())
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test ./report -update rewrites it):\n%s", name, got)
	}
}

// TestGoldenJSON reports on a day of attacks written from the formats of
// log-formats.md and checks the whole JSON; the checks below say what in
// it matters most.
func TestGoldenJSON(t *testing.T) {
	rep := build(t, "testdata/attack.log", "asterisk", report.Options{})
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	golden(t, "attack.golden.json", buf.Bytes())

	if n := rep.Totals; n.Lines != 41 || n.Failures != 29 || n.Successes != 1 || n.Bans != 1 || n.Compromises != 1 ||
		n.Allowlisted != 1 || n.WhileBanned != 1 || n.Dropped != 2 {
		t.Errorf("totals %+v", n)
	}
	if d := rep.DroppedByReason; d["malformed"] != 1 || d["bad_address"] != 1 {
		t.Errorf("dropped %v", d)
	}
	if len(rep.Bans) != 1 || rep.Bans[0].IP != "198.51.100.7" || rep.Bans[0].Rule != "burst" || rep.Bans[0].Count != 5 {
		t.Errorf("bans %+v", rep.Bans)
	}
	if len(rep.Compromises) != 1 || rep.Compromises[0].IP != "198.51.100.9" || rep.Compromises[0].User != "1003" || rep.Compromises[0].Failures != 3 {
		t.Errorf("compromises %+v", rep.Compromises)
	}
	// The slow guesser tops what got through; the banned burst is not there.
	if len(rep.BelowRules) == 0 || rep.BelowRules[0].Address != "203.0.113.50" || rep.BelowRules[0].Failures != 8 {
		t.Errorf("below rules %+v", rep.BelowRules)
	}
	for _, a := range rep.BelowRules {
		if a.Address == "198.51.100.7" || a.Address == "127.0.0.1" {
			t.Errorf("%s is below the rules: %+v", a.Address, a)
		}
	}
	if a := rep.Addresses[0]; a.Address != "198.51.100.7" || a.Failures != 8 || a.Bans != 1 {
		t.Errorf("top address %+v", a)
	}
	var v6 *report.NetworkRow
	for i, n := range rep.Networks {
		if n.Network == "2001:db8:bad::/64" {
			v6 = &rep.Networks[i]
		}
	}
	if v6 == nil || v6.Failures != 3 || v6.Addresses != 2 {
		t.Errorf("IPv6 /64: %+v", v6)
	}
	if u := rep.Accounts[0]; u.User != "1002" || u.Failures != 8 || !u.Exists {
		t.Errorf("top account %+v", u)
	}
	if len(rep.Extensions) != 2 || rep.Extensions[0].User != "0046812345678" || rep.Extensions[0].Failures != 2 {
		t.Errorf("extensions %+v", rep.Extensions)
	}
	services := map[string]int64{}
	for _, s := range rep.Services {
		services[s.Service] = s.Failures
	}
	if services["sip"] != 19 || services["pjsip"] != 7 || services["ami"] != 3 {
		t.Errorf("services %v", services)
	}
	if rep.BucketSeconds != 300 || len(rep.Timeline) != 91 || rep.Timeline[0].Failures["auth_failed"] != 6 || rep.Timeline[0].Bans["burst"] != 1 {
		t.Errorf("timeline (%ds) %+v", rep.BucketSeconds, rep.Timeline)
	}
}

// TestSince: events before --since are skipped and counted.
func TestSince(t *testing.T) {
	rep := build(t, "testdata/attack.log", "asterisk", report.Options{Since: time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)})
	if rep.Totals.BeforeSince != 14 || rep.Totals.Bans != 0 || rep.Timeline[0].Start.Hour() != 12 {
		t.Errorf("since 12:00: totals %+v, first bucket %v", rep.Totals, rep.Timeline[0].Start)
	}
	b, _ := json.Marshal(rep)
	if !bytes.Contains(b, []byte(`"since":"2026-03-02T12:00:00Z"`)) {
		t.Errorf("no since in %s", b)
	}
}

// TestHTML writes the page of the attack log: self-contained, its hostile
// user name escaped, every chart with its text alternative and table.
func TestHTML(t *testing.T) {
	rep := build(t, "testdata/attack.log", "asterisk", report.Options{})
	var buf bytes.Buffer
	if err := rep.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if strings.Contains(page, "<script") || !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Error("the <script> user name is not escaped")
	}
	if !strings.Contains(page, `<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;; style-src &#39;unsafe-inline&#39;`) {
		t.Error("no strict CSP meta tag")
	}
	for _, bad := range []string{"http://", "https://", "src=", "@import", "url("} {
		if strings.Contains(page, bad) {
			t.Errorf("the page holds %q: it must load nothing", bad)
		}
	}
	// Every chart: an SVG with a title and a description, and a table after it.
	svgs := strings.Count(page, `role="img"`)
	if svgs != 7 || strings.Count(page, "<desc id=") != svgs || strings.Count(page, "<table>") < svgs {
		t.Errorf("%d charts, %d descriptions, %d tables", svgs, strings.Count(page, "<desc id="), strings.Count(page, "<table>"))
	}
	for _, want := range []string{"Successful logins after failures: 1", "198.51.100.9", "203.0.113.50", "2001:db8:bad::/64", "0046812345678", "prefers-color-scheme:dark", "@media print"} {
		if !strings.Contains(page, want) {
			t.Errorf("no %q in the page", want)
		}
	}
}

// TestCompromiseBan: with on_success_after_failures = "ban", the guessed
// password's address is banned, and the report says so among the bans.
func TestCompromiseBan(t *testing.T) {
	rep := buildWith(t, "testdata/attack.log", "asterisk", report.Options{}, func(o *engine.Options) {
		o.Compromise.Action, o.Compromise.BanTime = "ban", 7*24*time.Hour
	})
	if rep.Totals.Bans != 2 || rep.Totals.Compromises != 1 || len(rep.Bans) != 2 {
		t.Fatalf("totals %+v, bans %+v", rep.Totals, rep.Bans)
	}
	if b := rep.Bans[1]; b.Rule != "compromise" || b.IP != "198.51.100.9" || b.BanFor != 7*24*3600 {
		t.Errorf("compromise ban %+v", b)
	}
	if r := rep.Rules[len(rep.Rules)-1]; r.Name != "compromise" || r.Bans != 1 {
		t.Errorf("rules %+v", rep.Rules)
	}
	var inTimeline int64
	for _, b := range rep.Timeline {
		inTimeline += b.Bans["compromise"]
	}
	if inTimeline != 1 {
		t.Errorf("%d compromise bans in the timeline", inTimeline)
	}
	var buf bytes.Buffer
	if err := rep.WriteHTML(&buf); err != nil || !strings.Contains(buf.String(), "a successful login after failures") {
		t.Errorf("page: %v", err)
	}
}

// TestHTMLBidi: user names may carry Unicode's invisible bidirectional
// controls. Written as they are, U+202E (right-to-left override) turns
// "\u202enimda" into what reads as "admin" and reverses the rest of its
// line: the other names and counts of a chart's description, the
// "exists: harden" mark beside it. The page and the JSON show such
// characters as visible escapes instead.
func TestHTMLBidi(t *testing.T) {
	log := filepath.Join(t.TempDir(), "bidi.log")
	lines := "[2026-03-02 14:00:00] NOTICE[4121] manager.c: 198.51.100.66 failed to authenticate as '\u202enimda'\n" +
		"[2026-03-02 14:00:01] NOTICE[4121] manager.c: 198.51.100.66 failed to authenticate as 'ro\u2066ot\u200b'\n"
	if err := os.WriteFile(log, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := build(t, log, "asterisk", report.Options{})
	var page, js bytes.Buffer
	if err := rep.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"page": page.String(), "json": js.String()} {
		if i := strings.IndexAny(out, "\u202e\u2066\u200b"); i >= 0 {
			t.Errorf("%s: an invisible control at %d: %q", name, i, out[max(0, i-40):min(len(out), i+40)])
		}
	}
	if !strings.Contains(page.String(), `\u202enimda`) || !strings.Contains(page.String(), `ro\u2066ot\u200b`) {
		t.Error("the names are not shown with their controls escaped")
	}
}
