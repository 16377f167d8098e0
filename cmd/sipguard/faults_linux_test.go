package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/internal/testutil"
)

// TestStateDiskFull runs the daemon with its state directory on a tiny
// tmpfs (in a mount namespace of its own, gone with the daemon), fills it,
// and checks that bans go on being enforced, that status shows the error,
// and that the state is saved again once there is room.
func TestStateDiskFull(t *testing.T) {
	needRoot(t)
	testutil.NeedCommands(t, "util-linux", "unshare", "nsenter")
	ns := netns(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o700)
	logPath := filepath.Join(dir, "messages.log")
	os.WriteFile(logPath, nil, 0o644)
	config := filepath.Join(dir, "rules.toml")
	os.WriteFile(config, []byte(fmt.Sprintf(`
[daemon]
state_dir = %q
socket = %q
[[source]]
name = "pbx"
path = %q
parser = "asterisk"
`, state, filepath.Join(dir, "sock"), logPath)), 0o644)

	script := fmt.Sprintf("mount -t tmpfs -o size=64k tmpfs %s && exec ip netns exec %s %s run -c %s", state, ns, buildSipguard(t), config)
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	stderr := &testutil.Buffer{}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemonProc{t: t, cmd: cmd, stderr: stderr, done: make(chan struct{})}
	go func() { cmd.Wait(); close(d.done) }()
	t.Cleanup(d.stop)
	if !waitFor(10*time.Second, func() bool { _, err := status(t, config); return err == nil }) {
		t.Fatalf("daemon did not start:\n%s", stderr)
	}
	inMount := func(args ...string) ([]byte, error) {
		return exec.Command("nsenter", append([]string{"-t", fmt.Sprint(cmd.Process.Pid), "-m", "--"}, args...)...).CombinedOutput()
	}
	inMount("sh", "-c", "dd if=/dev/zero of="+state+"/filler bs=4k 2>/dev/null; true")

	appendLines(t, logPath, failures("198.51.100.7", 5)...)
	if !waitFor(10*time.Second, func() bool { return setHas(t, ns, "ban4", "198.51.100.7") }) {
		t.Fatalf("not banned with the state disk full:\n%s", stderr)
	}
	stateErr := func() (string, bool) {
		var st struct {
			State struct {
				Error string `json:"error"`
			} `json:"state"`
		}
		out, _, err := ctl(t, "status", "--json", "-c", config)
		ok := err == nil && jsonInto(out, &st)
		return st.State.Error, ok
	}
	if !waitFor(5*time.Second, func() bool { e, ok := stateErr(); return ok && strings.Contains(e, "no space left") }) {
		t.Errorf("status does not show the full disk:\n%s", stderr)
	}
	inMount("rm", "-f", state+"/filler")
	if !waitFor(5*time.Second, func() bool { e, ok := stateErr(); return ok && e == "" }) {
		t.Errorf("state not saved once there was room:\n%s", stderr)
	}
	if out, err := inMount("grep", "-c", "^ban.198.51.100.7/32", state+"/bans.state"); err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Errorf("ban not in the saved state: %v %s", err, out)
	}
	if !strings.Contains(stderr.String(), "state not saved") || !strings.Contains(stderr.String(), "state saved again") {
		t.Errorf("the failure and the recovery are not logged:\n%s", stderr)
	}
}
