package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/config"
	"github.com/sipguard/sipguard/internal/failjson"
	"github.com/sipguard/sipguard/internal/testutil"
	"github.com/sipguard/sipguard/parsers"
)

// TestContribConfigs: every example config under contrib/ passes `sipguard
// check`, which also runs each custom pattern on its example lines.
func TestContribConfigs(t *testing.T) {
	files, err := filepath.Glob("../../contrib/*/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	// One per PBX family docs/pbx.md documents, and the custom example.
	for _, want := range []string{"asterisk", "freepbx", "yeastar", "3cx", "kamailio", "custom"} {
		found := false
		for _, f := range files {
			found = found || filepath.Base(filepath.Dir(f)) == want
		}
		if !found {
			t.Errorf("contrib/%s has no example config", want)
		}
	}
	for _, f := range files {
		out, errOut, code := run(t, "", "check", "-c", f)
		if code != 0 || !strings.Contains(out, ": OK (") {
			t.Errorf("%s: exit %d\n%s%s", f, code, out, errOut)
		}
	}
}

// TestContribKamailioJournal: the Kamailio example reads the journal's
// messages of kamailio.service, and the daemon is given that match.
func TestContribKamailioJournal(t *testing.T) {
	cfg, err := config.Load("../../contrib/kamailio/rules.toml")
	if err != nil {
		t.Fatal(err)
	}
	m := &Main{HostAddrs: config.HostAddrs}
	dc, err := m.daemonConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(dc.Sources) != 1 || dc.Sources[0].Journal.String() != "_SYSTEMD_UNIT=kamailio.service" || dc.Sources[0].Path != "" {
		t.Errorf("sources: %+v", dc.Sources)
	}
}

// freeswitchParser is the [[parser]] of contrib/custom/freeswitch.toml.
func freeswitchParser(t *testing.T) parsers.Parser {
	t.Helper()
	cfg, err := config.Load("../../contrib/custom/freeswitch.toml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := cfg.ParserFactory("freeswitch")(parsers.Options{Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestContribFreeSWITCH: the FreeSWITCH example patterns on lines in each
// layout, and on lines where the attacker-written To user imitates the end
// of the line.
func TestContribFreeSWITCH(t *testing.T) {
	p := freeswitchParser(t)
	for _, c := range []struct {
		line, addr, user string
		kind             parsers.Kind
	}{
		{"2026-10-09 10:24:37.221843 38.50% [WARNING] sofia_reg.c:1792 SIP auth failure (REGISTER) on sofia profile 'internal' for [1001@pbx.example.com] from ip 198.51.100.7",
			"198.51.100.7", "1001", parsers.AuthFailed},
		{"2026-10-09 10:24:37.221843 [WARNING] sofia_reg.c:3210 Can't find user [4511@192.0.2.1] from 2001:db8::7",
			"2001:db8::7", "4511", parsers.UnknownUser},
		// The To user carries a fake end of line: the real source is last.
		{"2026-10-09 10:24:37.221843 38.50% [WARNING] sofia_reg.c:1792 SIP auth failure (INVITE) on sofia profile 'internal' for [1] from ip 192.0.2.66@pbx] from ip 198.51.100.8",
			"198.51.100.8", "1] from ip 192.0.2.66", parsers.AuthFailed},
		{"2026-10-09 10:24:37.221843 [WARNING] sofia_reg.c:3210 Can't find user [x@y] from 192.0.2.66 '\"@pbx] from 198.51.100.9",
			"198.51.100.9", "x@y] from 192.0.2.66 '\"", parsers.UnknownUser},
	} {
		var ev parsers.Event
		if o := p.Parse([]byte(c.line), &ev); o != parsers.Matched || ev.Addr.String() != c.addr || ev.User != c.user || ev.Kind != c.kind {
			t.Errorf("%v %v %q %v; want %s %q %v\n%s", o, ev.Addr, ev.User, ev.Kind, c.addr, c.user, c.kind, c.line)
		}
	}
	for _, line := range []string{
		// A challenge precedes every successful registration.
		"2026-10-09 10:24:37.221843 [WARNING] sofia_reg.c:1533 SIP auth challenge (INVITE) on sofia profile 'internal' for [1@pbx] from ip 198.51.100.7",
		// Other modules' "Can't find user" name no packet source.
		"2026-10-09 10:24:37.221843 [WARNING] mod_dptools.c:4511 Can't find user [1@pbx] from 192.0.2.66",
		// Text after the address: not FreeSWITCH's line.
		"2026-10-09 10:24:37.221843 [WARNING] sofia_reg.c:3210 Can't find user [1@pbx] from 192.0.2.66 x",
		"2026-10-09 10:24:37.221843 [WARNING] sofia_reg.c:3210 Can't find user [1@pbx] from pbx.example.com",
		"You must define a domain called 'pbx' in your directory and add a user with the id=\"1\" attribute",
	} {
		var ev parsers.Event
		if o := p.Parse([]byte(line), &ev); o == parsers.Matched {
			t.Errorf("matched %v\n%s", ev.Addr, line)
		}
	}
}

// TestContribFreeSWITCHFail2banSamples: the example patterns meet
// fail2ban's expectations for its FreeSWITCH samples, except for the
// challenge lines they leave out on purpose (contrib/custom/README.md).
func TestContribFreeSWITCHFail2banSamples(t *testing.T) {
	samples, err := failjson.Read(failjson.Dir + "/freeswitch")
	if err != nil {
		testutil.Missing(t, "fail2ban's FreeSWITCH samples are not installed (apt-get install fail2ban; .ci/run does): %v", err)
	}
	p := freeswitchParser(t)
	checked := 0
	for _, s := range samples {
		var ev parsers.Event
		o := p.Parse([]byte(s.Line), &ev)
		if strings.Contains(s.Line, "SIP auth challenge") {
			if o == parsers.Matched {
				t.Errorf("line %d: a challenge counted\n%s", s.N, s.Line)
			}
		} else if msg := s.Check(o == parsers.Matched, ev.Addr.String()); msg != "" {
			t.Errorf("%s (%v)", msg, o)
		} else {
			checked++
		}
	}
	if checked < 7 {
		t.Errorf("only %d expectations checked", checked)
	}
	t.Logf("%d of fail2ban's expectations met", checked)
}
