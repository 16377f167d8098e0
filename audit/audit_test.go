package audit_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/sipguard/sipguard/asteriskconf"
	"github.com/sipguard/sipguard/audit"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var now = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

// fixture copies testdata/NAME into a temporary root with every file at
// mode (git keeps no modes) and returns the host to audit there.
func fixture(t *testing.T, name string, mode fs.FileMode) audit.Host {
	t.Helper()
	src := filepath.Join("testdata", name)
	root := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(root, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(dst, data, mode); err != nil {
			return err
		}
		return os.Chmod(dst, mode)
	})
	if err != nil {
		t.Fatal(err)
	}
	return audit.Host{FS: os.DirFS(root), Dir: "/etc/asterisk", Now: now}
}

func run(t *testing.T, h audit.Host) *audit.Report {
	t.Helper()
	r, err := audit.Run(h)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// find returns the findings of check id.
func find(r *audit.Report, id string) []audit.Finding {
	var out []audit.Finding
	for _, f := range r.Findings {
		if f.ID == id {
			out = append(out, f)
		}
	}
	return out
}

// badWant is, for each check, where the bad fixture must trigger it and a
// word its detail must hold.
var badWant = map[string][]struct{ where, detail string }{
	"CONF-EXEC":                  {{"/etc/asterisk/extensions.conf:13", "gen-dialplan"}},
	"CONF-PROBLEM":               {{"/etc/asterisk/sip.conf:4", "no '='"}},
	"FILE-WORLD-READABLE":        {{"/etc/asterisk/pjsip.conf", "mode 0644"}, {"/etc/asterisk/sip_peers.conf", "0644"}, {"/etc/amportal.conf", "0644"}},
	"AST-LIVE-DANGEROUSLY":       {{"/etc/asterisk/asterisk.conf:2", "live_dangerously=yes"}},
	"AST-EXECINCLUDES":           {{"/etc/asterisk/asterisk.conf:3", "execincludes=yes"}},
	"AST-RUNS-AS-ROOT":           {{"/etc/asterisk/asterisk.conf:4", "runuser=root"}},
	"PJSIP-WEAK-PASSWORD":        {{"/etc/asterisk/pjsip.conf:20", "equal or close to the account name"}, {"/etc/asterisk/pjsip.conf:28", "shorter than 12"}},
	"PJSIP-NO-AUTH":              {{"/etc/asterisk/pjsip.conf:30", "[lobby]"}},
	"PJSIP-ANONYMOUS":            {{"/etc/asterisk/pjsip.conf:33", "context from-guests"}},
	"PJSIP-NO-TLS":               {{"/etc/asterisk/pjsip.conf:4", "0.0.0.0:5060"}},
	"PJSIP-NO-ACL":               {{"/etc/asterisk/pjsip.conf:1", "no type=acl"}},
	"SIP-ALLOWGUEST":             {{"/etc/asterisk/sip.conf:1", "not set"}},
	"SIP-ALWAYSAUTHREJECT":       {{"/etc/asterisk/sip.conf:3", "alwaysauthreject=no"}},
	"GUEST-OUTBOUND":             {{"/etc/asterisk/sip.conf:2", "from-guests -> phones"}, {"/etc/asterisk/pjsip.conf:35", "anonymous PJSIP"}, {"/etc/asterisk/iax.conf:6", "IAX2 guest"}},
	"SIP-INSECURE":               {{"/etc/asterisk/sip_peers.conf:6", "insecure=port,invite"}},
	"SIP-WEAK-SECRET":            {{"/etc/asterisk/sip_peers.conf:5", "[2001]"}},
	"IAX-GUEST":                  {{"/etc/asterisk/iax.conf:4", "[guest]"}},
	"IAX-CALLTOKEN":              {{"/etc/asterisk/iax.conf:2", "requirecalltoken=no"}},
	"IAX-WEAK-SECRET":            {{"/etc/asterisk/iax.conf:10", "common passwords"}},
	"DIALPLAN-EXTEN-UNFILTERED":  {{"/etc/asterisk/extensions.conf:8", "_X."}},
	"DIALPLAN-DISA-NOPASS":       {{"/etc/asterisk/extensions.conf:9", "no-password"}},
	"FREEPBX-ALLOW-SIP-ANON":     {{"/etc/asterisk/extensions.conf:2", "ALLOW_SIP_ANON=yes"}},
	"FREEPBX-DEFAULT-PASS":       {{"/etc/amportal.conf:2", "AMPDBPASS"}, {"/etc/amportal.conf:4", "AMPMGRPASS"}},
	"AMI-OPEN":                   {{"/etc/asterisk/manager.conf:6", "[admin]"}},
	"AMI-WEAK-SECRET":            {{"/etc/asterisk/manager.conf:7", "common passwords"}},
	"AMI-DANGEROUS-WRITE":        {{"/etc/asterisk/manager.conf:9", "write=system"}},
	"HTTP-OPEN":                  {{"/etc/asterisk/http.conf:3", "bindaddr=0.0.0.0"}},
	"ARI-WEAK-PASSWORD":          {{"/etc/asterisk/ari.conf:6", "common passwords"}},
	"VM-WEAK-PIN":                {{"/etc/asterisk/voicemail.conf:5", "mailbox number"}, {"/etc/asterisk/voicemail.conf:6", "sequential"}, {"/etc/asterisk/voicemail.conf:7", "shorter than 6"}},
	"RELEASE-EOL":                {{"", "end of life on 2025-10-20"}},
	"SIPGUARD-SOURCE-UNREADABLE": {{"/etc/sipguard/rules.toml", "messages.log: missing"}},
	"SIPGUARD-NO-ALLOWLIST":      {{"/etc/sipguard/rules.toml", "[allow] addresses is empty"}},
	"SIPGUARD-POLICY-OPEN":       {{"/etc/sipguard/rules.toml", "0.0.0.0:5060/udp, [::]:5061/tcp listened on, the host has the public address 93.184.216.34"}},
}

// TestChecks_Bad: every check finds what the bad fixture holds, where it
// is written.
func TestChecks_Bad(t *testing.T) {
	h := fixture(t, "bad", 0o644)
	h.Version, h.VersionFrom = "18.20.0", "asterisk -V"
	h.Self = &audit.Self{File: "/etc/sipguard/rules.toml", Unreadable: []string{"source asterisk: /var/log/asterisk/messages.log: missing"},
		Policy: "open", SIPPorts: sipPorts, HostAddrs: []netip.Addr{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("93.184.216.34")}}
	r := run(t, h)
	for id, wants := range badWant {
		got := find(r, id)
		for _, w := range wants {
			found := false
			for _, f := range got {
				found = found || (f.Where() == w.where && strings.Contains(f.Detail, w.detail))
			}
			if !found {
				t.Errorf("%s: no finding at %q with %q; got %+v", id, w.where, w.detail, got)
			}
		}
	}
	for _, f := range r.Findings {
		if f.Why == "" || f.Fix == "" || f.Source == "" || f.Title == "" {
			t.Errorf("%s: incomplete %+v", f.ID, f)
		}
	}
	// Every check is tested here, but those the bad fixture cannot show,
	// tested below (TestRelease, TestChecks_Small).
	untested := map[string]bool{"CONF-UNREADABLE": true, "RELEASE-SECURITY-ONLY": true, "RELEASE-UNKNOWN": true, "PJSIP-NO-SRTP": true}
	// (the release checks in TestRelease, the others in TestChecks_Small)
	for _, c := range audit.Checks {
		if _, ok := badWant[c.ID]; !ok && !untested[c.ID] {
			t.Errorf("check %s has no case in badWant", c.ID)
		}
	}
	golden(t, "bad.golden.json", r)
}

// TestChecks_Good: the hardened fixture gives no finding above info, and
// none of the checks the bad one triggers.
func TestChecks_Good(t *testing.T) {
	h := fixture(t, "good", 0o640)
	h.Self = &audit.Self{File: "/etc/sipguard/rules.toml", Allow: []string{"203.0.113.5"}}
	r := run(t, h)
	for _, f := range r.Findings {
		if f.Severity > audit.Info {
			t.Errorf("%s %s at %s: %s", f.Severity, f.ID, f.Where(), f.Detail)
		}
		if _, bad := badWant[f.ID]; bad {
			t.Errorf("%s on the good fixture: %s %s", f.ID, f.Where(), f.Detail)
		}
	}
	if len(r.Files) != 10 {
		t.Errorf("files read: %d %q", len(r.Files), r.Files)
	}
}

// TestChecks_FreePBX: FreePBX's generated files, findings in the included
// files at their lines.
func TestChecks_FreePBX(t *testing.T) {
	r := run(t, fixture(t, "freepbx", 0o640))
	for _, w := range []struct{ id, where string }{
		{"PJSIP-WEAK-PASSWORD", "/etc/asterisk/pjsip.auth.conf:4"},
		{"PJSIP-ANONYMOUS", "/etc/asterisk/pjsip.endpoint.conf:1"},
		{"PJSIP-NO-TLS", "/etc/asterisk/pjsip.transports.conf:4"},
		{"PJSIP-NO-ACL", "/etc/asterisk/pjsip.transports.conf:1"},
		{"FREEPBX-ALLOW-SIP-ANON", "/etc/asterisk/extensions_additional.conf:3"},
	} {
		found := false
		for _, f := range find(r, w.id) {
			found = found || f.Where() == w.where
		}
		if !found {
			t.Errorf("%s: none at %s; got %+v", w.id, w.where, find(r, w.id))
		}
	}
	golden(t, "freepbx.golden.json", r)
	// The anonymous endpoint reaches inbound routes only.
	if got := find(r, "GUEST-OUTBOUND"); len(got) != 0 {
		t.Errorf("guest outbound on FreePBX's from-sip-external: %+v", got)
	}
}

// fixtureSecrets returns every secret written in a fixture (passwords,
// secrets, voicemail PINs, amportal.conf's passwords), but those that are
// also an account's name: a finding names the account.
func fixtureSecrets(t *testing.T, dir string) []string {
	t.Helper()
	l := &asteriskconf.Loader{FS: os.DirFS(filepath.Join("testdata", dir)), Dir: "/etc/asterisk"}
	names := map[string]bool{}
	var secrets []string
	for _, file := range []string{"sip.conf", "pjsip.conf", "iax.conf", "manager.conf", "ari.conf", "voicemail.conf"} {
		c, err := l.Load(file)
		if err != nil {
			continue
		}
		for _, sec := range c.Sections {
			names[sec.Name] = true
			for _, v := range sec.Vars {
				switch n := strings.ToLower(v.Name); {
				case n == "username" || n == "defaultuser":
					names[v.Value] = true
				case n == "secret" || n == "password":
					secrets = append(secrets, v.Value)
				case file == "voicemail.conf" && sec.Name != "general":
					pin, _, _ := strings.Cut(v.Value, ",")
					secrets = append(secrets, pin)
				}
			}
		}
	}
	if data, err := os.ReadFile(filepath.Join("testdata", dir, "etc/amportal.conf")); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok && strings.HasSuffix(k, "PASS") {
				secrets = append(secrets, v)
			}
		}
	}
	var out []string
	for _, s := range secrets {
		if s != "" && !names[s] {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: only %d secrets found: %q", dir, len(out), out)
	}
	return out
}

// TestNoSecretInOutput: no secret of any fixture is in what a finding
// says (its detail and file), nor anywhere in the JSON report but the
// fixed texts that name FreePBX's published defaults.
func TestNoSecretInOutput(t *testing.T) {
	for _, dir := range []string{"bad", "good", "freepbx"} {
		h := fixture(t, dir, 0o644)
		h.Version = "18.20.0"
		h.Self = &audit.Self{}
		r := run(t, h)
		for _, s := range fixtureSecrets(t, dir) {
			for _, f := range r.Findings {
				if strings.Contains(f.Detail, s) || strings.Contains(f.File, s) {
					t.Errorf("%s: %s shows secret %q: %q", dir, f.ID, s, f.Detail)
				}
			}
			out, _ := json.Marshal(r)
			if s != "amp111" && s != "amp109" && bytes.Contains(out, []byte(s)) {
				t.Errorf("%s: secret %q in the JSON report", dir, s)
			}
		}
	}
}

func TestRelease(t *testing.T) {
	for _, c := range []struct {
		version, id string
	}{
		{"18.20.0", "RELEASE-EOL"},
		{"16.30.1", "RELEASE-EOL"},
		{"1.8.32.3", "RELEASE-EOL"},
		{"21.4.1", "RELEASE-EOL"},
		{"20.11.0", "RELEASE-SECURITY-ONLY"},
		{"22.1.0", ""},
		{"18.9-cert5", "RELEASE-EOL"},
		{"", "RELEASE-UNKNOWN"},
		{"GIT-master-abc", "RELEASE-UNKNOWN"},
	} {
		h := fixture(t, "good", 0o640)
		h.Version = c.version
		r := run(t, h)
		var got []string
		for _, f := range r.Findings {
			if strings.HasPrefix(f.ID, "RELEASE-") {
				got = append(got, f.ID)
			}
		}
		if want := c.id; (want == "" && len(got) > 0) || (want != "" && (len(got) != 1 || got[0] != want)) {
			t.Errorf("%q: got %q; want %q", c.version, got, want)
		}
	}
}

func TestRun_ErrNoAsterisk(t *testing.T) {
	_, err := audit.Run(audit.Host{FS: os.DirFS(t.TempDir()), Dir: "/etc/asterisk", Now: now})
	if err == nil || !strings.Contains(err.Error(), "no Asterisk configuration") {
		t.Errorf("got %v", err)
	}
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"ok [1001]":           "ok [1001]",
		"a\x1b[31mred\x1b[0m": `a\x1b[31mred\x1b[0m`,
		"cr\rlf\n":            `cr\x0dlf\x0a`,
		"bidi\u202eevil":      `bidi\u202eevil`,
		"c1\u009b":            `c1\u009b`,
		"bad\xffutf8":         `bad\ufffdutf8`,
	} {
		if got := audit.Clean(in, 100); got != want {
			t.Errorf("Clean(%q) = %q; want %q", in, got, want)
		}
	}
	if got := audit.Clean(strings.Repeat("x", 50), 10); got != strings.Repeat("x", 10)+"…" {
		t.Errorf("not cut: %q", got)
	}
}

// golden compares v's JSON with testdata/name (-update rewrites it).
func golden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update once)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the report (go test ./audit -update rewrites it); got:\n%s", path, got)
	}
}

// TestDocs: docs/audit.md documents every check, with its severity, and
// the README names each.
func TestDocs(t *testing.T) {
	doc, err := os.ReadFile("../docs/audit.md")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range audit.Checks {
		if want := "### " + c.ID + " (" + c.Severity.String() + "): "; !bytes.Contains(doc, []byte(want)) {
			t.Errorf("docs/audit.md has no %q", want)
		}
		if !bytes.Contains(readme, []byte("`"+c.ID+"`")) {
			t.Errorf("README.md does not name %s", c.ID)
		}
	}
}

// TestLogVersion: the version from the last logger header of the newest
// log; attackers' text that imitates the header is not taken.
func TestLogVersion(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "var/log/asterisk")
	os.MkdirAll(dir, 0o755)
	full := filepath.Join(dir, "full")
	os.WriteFile(full, []byte("[2026-11-01 10:00:00] Asterisk 18.20.0 built by root @ pbx on a x86_64 running Linux on 2023-10-01 UTC\n"+
		"[2026-11-01 10:00:01] NOTICE[99] chan_sip.c: Registration from '\"x\" <sip:100@1.2.3.4>' failed for '203.0.113.9:5060' - Wrong password\n"+
		"[2026-11-20 09:00:00] Asterisk 20.11.0 built by root @ pbx on a x86_64 running Linux on 2024-12-01 UTC\n"+
		"[2026-11-20 09:00:02] NOTICE[99] res_pjsip.c: [2026-11-20] Asterisk 99.0.0 built by evil @ x\n"), 0o644)
	msgs := filepath.Join(dir, "messages")
	os.WriteFile(msgs, []byte("[2026-10-01 10:00:00] Asterisk 16.30.0 built by root @ old on a x86_64 running Linux on 2022\n"), 0o644)
	old := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	os.Chtimes(msgs, old, old)
	v, from := audit.LogVersion(os.DirFS(root), audit.AsteriskLogs)
	if v != "20.11.0" || from != "/var/log/asterisk/full" {
		t.Errorf("got %q from %q; want 20.11.0 from /var/log/asterisk/full", v, from)
	}
	if v, _ := audit.LogVersion(os.DirFS(t.TempDir()), audit.AsteriskLogs); v != "" {
		t.Errorf("no logs: got %q", v)
	}
}

// small writes files (paths from the root) and audits them.
func small(t *testing.T, files map[string]string) *audit.Report {
	t.Helper()
	root := t.TempDir()
	for name, text := range files {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return run(t, audit.Host{FS: os.DirFS(root), Dir: "/etc/asterisk", Now: now, Version: "22.1.0"})
}

// TestChecks_Small: checks whose bad case would hide another check's in
// the bad fixture, each with a positive and a negative case.
func TestChecks_Small(t *testing.T) {
	const tls = "[tls]\ntype=transport\nprotocol=tls\nbind=0.0.0.0:5061\n[acl]\ntype=acl\ndeny=0.0.0.0/0\n" +
		"[a]\ntype=auth\nusername=a\npassword=Vq7#kd9Lp2!xRt4m\n[p1]\ntype=endpoint\ntransport=tls\nauth=a\n"
	for _, c := range []struct {
		name  string
		files map[string]string
		id    string
		where string // "" when it must be absent
	}{
		{"srtp missing", map[string]string{"etc/asterisk/pjsip.conf": tls}, "PJSIP-NO-SRTP", "/etc/asterisk/pjsip.conf:14"},
		{"srtp", map[string]string{"etc/asterisk/pjsip.conf": tls + "media_encryption=sdes\n"}, "PJSIP-NO-SRTP", ""},
		{"root process", map[string]string{"etc/asterisk/asterisk.conf": "[options]\nrunuser=asterisk\n",
			"proc/4242/status": "Name:\tasterisk\nUid:\t0\t0\t0\t0\n", "proc/77/status": "Name:\tsshd\nUid:\t0\t0\t0\t0\n"},
			"AST-RUNS-AS-ROOT", "/proc/4242/status"},
		{"unreadable", map[string]string{"etc/asterisk/sip.conf/x": "", "etc/asterisk/pjsip.conf": ""}, "CONF-UNREADABLE", "/etc/asterisk/sip.conf"},
		{"readable", map[string]string{"etc/asterisk/sip.conf": "[general]\nallowguest=no\n"}, "CONF-UNREADABLE", ""},
		{"asterisk user", map[string]string{"etc/asterisk/asterisk.conf": "[options]\nrunuser=asterisk\n",
			"proc/4242/status": "Name:\tasterisk\nUid:\t110\t110\t110\t110\n"}, "AST-RUNS-AS-ROOT", ""},
	} {
		got := find(small(t, c.files), c.id)
		switch {
		case c.where == "" && len(got) > 0:
			t.Errorf("%s: %s found: %+v", c.name, c.id, got)
		case c.where != "" && (len(got) != 1 || got[0].Where() != c.where):
			t.Errorf("%s: %s: got %+v; want one at %s", c.name, c.id, got, c.where)
		}
	}
}

// FuzzRun: any pjsip.conf, sip.conf and extensions.conf give a report
// whose findings are known checks, and whose cleaned text holds no control
// character.
func FuzzRun(f *testing.F) {
	for _, dir := range []string{"bad", "good", "freepbx"} {
		read := func(name string) string {
			b, _ := os.ReadFile(filepath.Join("testdata", dir, "etc/asterisk", name))
			return string(b)
		}
		f.Add(read("pjsip.conf"), read("sip.conf"), read("extensions.conf"))
	}
	known := map[string]bool{}
	for _, c := range audit.Checks {
		known[c.ID] = true
	}
	f.Fuzz(func(t *testing.T, pjsip, sip, ext string) {
		m := fstest.MapFS{
			"etc/asterisk/pjsip.conf":      {Data: []byte(pjsip)},
			"etc/asterisk/sip.conf":        {Data: []byte(sip)},
			"etc/asterisk/extensions.conf": {Data: []byte(ext)},
		}
		r, err := audit.Run(audit.Host{FS: m, Dir: "/etc/asterisk", Now: now, Version: "20.1.0"})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range audit.CleanReport(r).Findings {
			if !known[f.ID] {
				t.Fatalf("unknown check %q", f.ID)
			}
			for _, c := range f.Detail + f.File {
				if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
					t.Fatalf("control character %U in %q", c, f.Detail)
				}
			}
		}
	})
}

// TestPasswords: the password rules, on a PJSIP auth section [7001-auth]
// of user 7001.
func TestPasswords(t *testing.T) {
	for _, c := range []struct {
		password string
		want     string // the severity, "" for none
	}{
		{"", "critical"},
		{"7001", "critical"},
		{"1007", "critical"},         // reversed
		{"7001pbx", "critical"},      // the name and a few characters
		{"letmein", "critical"},      // common
		{"LetMeIn", "critical"},      // common, any case
		{"83920174", "high"},         // digits only, short
		{"839201749911", "high"},     // digits only
		{"Tr7#pq2", "high"},          // short
		{"abcdefghijkl", "medium"},   // sequential
		{"qpwoeirutyzm", "medium"},   // one kind, under 16
		{"Vq7#kd9Lp2!xRt4m", ""},     // strong
		{"9c1f7e2ab4d03e58f6a1", ""}, // 20 random hex digits
		{"correct horse battery staple", ""},
	} {
		r := small(t, map[string]string{"etc/asterisk/pjsip.conf": "[7001-auth]\ntype=auth\nusername=7001\npassword=" + c.password + "\n"})
		got := find(r, "PJSIP-WEAK-PASSWORD")
		switch {
		case c.want == "" && len(got) > 0:
			t.Errorf("%q: %s %s; want none", c.password, got[0].Severity, got[0].Detail)
		case c.want != "" && (len(got) != 1 || got[0].Severity.String() != c.want):
			t.Errorf("%q: got %+v; want %s", c.password, got, c.want)
		}
	}
}
