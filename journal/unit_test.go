package journal_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard/internal/journaltest"
	"github.com/sipguard/sipguard/internal/testutil"
	"github.com/sipguard/sipguard/journal"
)

// procOptions returns the mount options of /proc that the shipped unit's
// ProtectProc= and ProcSubset= give the daemon (and the journalctl it runs).
func procOptions(t *testing.T) string {
	data, err := os.ReadFile("../contrib/systemd/sipguard.service")
	if err != nil {
		t.Fatal(err)
	}
	var opts []string
	for line := range strings.Lines(string(data)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch k {
		case "ProtectProc":
			opts = append(opts, "hidepid="+v)
		case "ProcSubset":
			opts = append(opts, "subset="+v)
		}
	}
	return strings.Join(opts, ",")
}

// TestUnitProcLetsJournalctlFollow: under the /proc the shipped systemd
// unit gives it, journalctl follows the journal; under ProcSubset=pid it
// cannot (it reads the boot id from /proc/sys), and the Follower says so.
func TestUnitProcLetsJournalctlFollow(t *testing.T) {
	j := journaltest.Start(t)
	match := journal.Match{Namespace: j.Namespace, Commands: []string{"asterisk"}, UIDs: []uint32{0}}
	sandboxed := func(opts string) string {
		wrapper := filepath.Join(t.TempDir(), "journalctl")
		script := "#!/bin/sh\nexec unshare --mount --propagation private sh -c 'mount -t proc -o " + opts + " proc /proc && exec journalctl \"$@\"' journalctl \"$@\"\n"
		if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		return wrapper
	}
	unit := procOptions(t)
	if !strings.Contains(unit, "hidepid=invisible") {
		t.Fatalf("the unit's /proc options %q: ProtectProc=invisible expected", unit)
	}
	c := follow(t, journal.Options{Match: match, Journalctl: sandboxed(unit)})
	testutil.WaitFor(t, 10*time.Second, "the follower to start", func() bool { return c.f.Origin() != "" })
	j.Syslog(journaltest.Writer{Comm: "asterisk"}, "asterisk", "under the unit's /proc")
	c.waitMessages(t, 1)

	bad := follow(t, journal.Options{Match: match, Journalctl: sandboxed("hidepid=invisible,subset=pid"), FromStart: true})
	testutil.WaitFor(t, 10*time.Second, "the problem", func() bool {
		p := bad.problemList()
		return len(p) > 0 && strings.Contains(p[len(p)-1], "boot id")
	})
}
