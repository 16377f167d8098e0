package main

import (
	"bytes"
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/internal/geoiptest"
)

// runCheck runs `check` on the config text cfg with the environment env,
// no host address nor gateway: its output, errors and exit code.
func runCheck(t *testing.T, env map[string]string, cfg string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := &Main{
		Stdout: &out, Stderr: &errOut, ConfigPath: filepath.Join(t.TempDir(), "absent.toml"),
		Now:       time.Now,
		HostAddrs: func() ([]netip.Prefix, error) { return nil, nil },
		Getenv:    func(k string) string { return env[k] },
		Gateways:  func() ([]netip.Addr, error) { return nil, nil },
	}
	code := m.Exit(m.Run(context.Background(), []string{"check", "-c", writeFile(t, "rules.toml", cfg)}))
	return out.String(), errOut.String(), code
}

// TestCheckPolicy: check refuses strict mode without an [allow] address
// but loopback, and warns when the SSH session goes to a SIP port and its
// client is not allowlisted.
func TestCheckPolicy(t *testing.T) {
	check := func(env map[string]string, cfg string) (string, string, int) {
		t.Helper()
		return runCheck(t, env, cfg)
	}
	out, errOut, code := check(nil, "[policy]\nmode = \"strict\"\n")
	if code != 1 || !strings.Contains(errOut, `[policy] mode = "strict" with no [allow] entry but loopback and no [[trunk]]`) || strings.Contains(out, "OK") {
		t.Errorf("strict without providers: %d %q %q", code, out, errOut)
	}
	byName := "[[trunk]]\nname = \"carrier\"\nnetworks = [\"203.0.113.0/24\"]\n"
	if out, errOut, code := check(nil, byName+"[policy]\nmode = \"strict\"\n"); code != 0 || !strings.Contains(out, "OK") {
		t.Errorf("strict with a [[trunk]] only: %d %q %q", code, out, errOut)
	}
	trunk := "[allow]\naddresses = [\"127.0.0.0/8\", \"198.51.100.0/28\"]\n"
	if out, errOut, code := check(nil, trunk+"[policy]\nmode = \"strict\"\n"); code != 0 || !strings.Contains(out, "OK") {
		t.Errorf("strict with a provider: %d %q %q", code, out, errOut)
	}
	// SSH to port 5061, a SIP port here.
	ssh := map[string]string{"SSH_CONNECTION": "203.0.113.5 52000 192.0.2.10 5061"}
	for mode, warned := range map[string]bool{"strict": true, "responsive": true, "open": false} {
		_, errOut, code := check(ssh, trunk+"[policy]\nmode = \""+mode+"\"\n")
		if code != 0 || strings.Contains(errOut, "your SSH session (203.0.113.5 to port 5061/tcp) goes to a SIP port") != warned {
			t.Errorf("mode %s, SSH to 5061: %d %q; want warned %v", mode, code, errOut, warned)
		}
	}
	if _, errOut, _ := check(map[string]string{"SSH_CONNECTION": "203.0.113.5 52000 192.0.2.10 22"}, trunk+"[policy]\nmode = \"strict\"\n"); strings.Contains(errOut, "SSH session") {
		t.Errorf("SSH to 22 warned: %q", errOut)
	}
	// allow_countries: not a provider for strict mode; nothing in open
	// mode, a warning.
	geo := "[geoip]\ndatabase = \"" + geoiptest.Write(t, t.TempDir(), map[string]string{"192.0.2.0/24": "DE"}) + "\"\n"
	if _, errOut, code := check(nil, geo+"[policy]\nmode = \"strict\"\nallow_countries = [\"DE\"]\n"); code != 1 || !strings.Contains(errOut, "no [allow] entry but loopback") {
		t.Errorf("strict with countries only: %d %q; want refused", code, errOut)
	}
	if out, errOut, code := check(nil, geo+"[policy]\nallow_countries = [\"DE\"]\n"); code != 0 || !strings.Contains(out, "OK") ||
		!strings.Contains(errOut, `[policy] allow_countries has no effect in mode "open"`) {
		t.Errorf("open with countries: %d %q %q; want OK and a warning", code, out, errOut)
	}
	if _, errOut, code := check(nil, geo+trunk+"[policy]\nmode = \"responsive\"\nallow_countries = [\"DE\"]\n"); code != 0 || strings.Contains(errOut, "allow_countries") {
		t.Errorf("responsive with countries: %d %q", code, errOut)
	}
	allowSSH := "[allow]\naddresses = [\"198.51.100.0/28\", \"203.0.113.5\"]\n"
	if _, errOut, _ := check(ssh, allowSSH+"[policy]\nmode = \"strict\"\n"); strings.Contains(errOut, "SSH session") {
		t.Errorf("allowlisted SSH client warned: %q", errOut)
	}
}

// TestCheckWideAllow: an [allow] entry or a trunk's network wider than
// the widest ban (a /8, an IPv6 /19) is warned of: everything in it is
// never banned and passes the policy. "::ffff:0:0/96" is every IPv4
// address.
func TestCheckWideAllow(t *testing.T) {
	check := func(cfg string) string {
		t.Helper()
		_, errOut, code := runCheck(t, nil, cfg)
		if code != 0 {
			t.Fatalf("check exits %d: %s", code, errOut)
		}
		return errOut
	}
	errOut := check("[allow]\naddresses = [\"127.0.0.0/8\", \"0.0.0.0/1\"]\n[[trunk]]\nname = \"carrier\"\nnetworks = [\"::ffff:0:0/96\", \"2000::/3\"]\n")
	for _, want := range []string{"[allow] 0.0.0.0/1", "trunk carrier: ::ffff:0:0/96 (0.0.0.0/0)", "trunk carrier: 2000::/3"} {
		if !strings.Contains(errOut, "warning: "+want) {
			t.Errorf("no warning for %s: %q", want, errOut)
		}
	}
	if errOut := check("[allow]\naddresses = [\"127.0.0.0/8\", \"10.0.0.0/8\", \"2001:db8::/32\", \"fe80::/10\", \"fc00::/7\"]\n"); strings.Contains(errOut, "never banned") {
		t.Errorf("a /8, link-local or unique local network warned: %q", errOut)
	}
}
