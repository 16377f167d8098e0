package fraud

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBlockAccountScript runs contrib/asterisk/sipguard-block-account with
// a stand-in for asterisk: a plain account is put into the AstDB, names
// the Asterisk CLI would read as more words or options are refused.
func TestBlockAccountScript(t *testing.T) {
	script, err := filepath.Abs("../contrib/asterisk/sipguard-block-account")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	got := filepath.Join(dir, "args")
	fake := filepath.Join(dir, "asterisk")
	os.WriteFile(fake, []byte("#!/bin/sh\nprintf '%s|' \"$@\" > "+got+"\n"), 0o755)
	run := func(args ...string) (string, error) {
		os.Remove(got)
		cmd := exec.Command(script, args...)
		cmd.Env = append(os.Environ(), "ASTERISK="+fake)
		if out, err := cmd.CombinedOutput(); err != nil {
			return string(out), err
		}
		data, err := os.ReadFile(got)
		return string(data), err
	}
	out, err := run("--", "1004", "risk_range")
	if err != nil || out != "-rx|database put sipguard-blocked 1004 risk_range|" {
		t.Errorf("plain account: %q %v", out, err)
	}
	if out, err := run("--", "alice.smith_2", "x;y"); err != nil || out != "-rx|database put sipguard-blocked alice.smith_2 fraud|" {
		t.Errorf("odd rule: %q %v", out, err)
	}
	for _, bad := range []string{"", "1004 extra", "-x", "a;b", "a\nb", "ü", "a$(id)"} {
		out, err := run("--", bad, "calls")
		if err == nil || !strings.Contains(out, "refusing") {
			t.Errorf("%q: %q %v, want a refusal", bad, out, err)
		}
	}
}
