package daemon_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/daemon"
	"github.com/sipguard/sipguard/internal/testutil"
)

// TestSourceStates: status tells per source whether it is read, missing,
// or why not, from the moment the daemon answers; the log warns of each
// source not read, again every 5 minutes while it lasts, and says when it
// is read again.
func TestSourceStates(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	missing := filepath.Join(e.dir, "asterisk", "messages") // its directory too
	dir := filepath.Join(e.dir, "a-directory")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	senders := []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
	file := cfg.Sources[0]
	gone, isDir := file, file
	gone.Name, gone.Path = "gone", missing
	isDir.Name, isDir.Path = "dir", dir
	cfg.Sources = append(cfg.Sources, gone, isDir,
		daemon.Source{Name: "syslog", Parser: "asterisk", Location: time.UTC, Listen: []string{"udp://127.0.0.1:0"}, Senders: senders},
		daemon.Source{Name: "busy", Parser: "asterisk", Location: time.UTC, Listen: []string{"udp://" + taken.LocalAddr().String()}, Senders: senders},
	)
	var skew atomic.Int64 // the daemon's clock runs ahead by this
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	r := startAt(t, cfg, nil, now, func(*daemon.Daemon) {})

	states := func() map[string]control.SourceStatus {
		st, err := r.client.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]control.SourceStatus{}
		for _, s := range st.Sources {
			m[s.Name] = s
		}
		return m
	}
	// At once: the daemon answers only once each source was looked at.
	got := states()
	for name, want := range map[string]string{"pbx": "reading", "gone": "missing", "dir": "is a directory", "syslog": "reading"} {
		if s := got[name].State; s != want {
			t.Errorf("%s: state %q; want %q", name, s, want)
		}
	}
	if s := got["busy"].State; !strings.HasPrefix(s, "listen udp://"+taken.LocalAddr().String()) || !strings.HasSuffix(s, "address already in use") {
		t.Errorf("busy: state %q; want the listen error", s)
	}
	if !got["gone"].Waiting || !got["dir"].Waiting || got["pbx"].Waiting {
		t.Errorf("waiting: gone %v, dir %v, pbx %v; want true, true, false", got["gone"].Waiting, got["dir"].Waiting, got["pbx"].Waiting)
	}

	warned := func(source string) int {
		return r.logs.Count(`"level":"warn"`, `"source":"`+source+`"`, "source not read")
	}
	testutil.WaitFor(t, 5*time.Second, "the warnings", func() bool { return warned("gone")+warned("dir")+warned("busy") == 3 })
	if n := r.logs.Count(`"source":"dir"`, `"state":"failing"`, `"reason":"is a directory"`, `"path":"`+dir+`"`); n != 1 {
		t.Errorf("%d warnings for dir with its state, reason and path; want 1\n%s", n, r.logs)
	}
	if n := r.logs.Count(`"source":"gone"`, `"state":"missing"`, `"path":"`+missing+`"`); n != 1 {
		t.Errorf("%d warnings for gone with its state and path; want 1\n%s", n, r.logs)
	}
	if warned("pbx") != 0 || warned("syslog") != 0 {
		t.Errorf("warnings for sources read:\n%s", r.logs)
	}
	ticked(t, r) // no repeat within 5 minutes
	if warned("gone") != 1 || warned("dir") != 1 {
		t.Errorf("warned again too soon:\n%s", r.logs)
	}

	// Five minutes on, the warning comes again, saying for how long.
	skew.Store(int64(5*time.Minute + time.Second))
	testutil.WaitFor(t, 5*time.Second, "the repeated warnings", func() bool { return warned("gone") == 2 && warned("dir") == 2 })
	if n := r.logs.Count(`"source":"dir"`, "source not read", `"for":`); n != 1 {
		t.Errorf("%d repeated warnings for dir saying for how long; want 1\n%s", n, r.logs)
	}

	// The file appears: read, and said so once.
	if err := os.Mkdir(filepath.Dir(missing), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(missing, []byte(failures("198.51.100.7", 1, time.Now())[0]+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, "gone read", func() bool { return states()["gone"].State == control.SourceReading })
	testutil.WaitFor(t, 5*time.Second, "the recovery line", func() bool {
		return r.logs.Count(`"level":"info"`, `"source":"gone"`, "source read again") == 1
	})
	ticked(t, r)
	if warned("gone") != 2 {
		t.Errorf("warned of gone once read:\n%s", r.logs)
	}
	if s := states()["gone"]; s.Waiting || s.Lines != 1 {
		t.Errorf("gone: %+v; want 1 line read, not waiting", s)
	}
}

// TestSourceStateReload: a source added by a reload has its state at once.
func TestSourceStateReload(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	r := start(t, cfg, nil)
	added := cfg.Sources[0]
	added.Name, added.Path = "added", filepath.Join(e.dir, "absent.log")
	cfg.Sources = append(cfg.Sources, added)
	if err := r.d.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	st, err := r.client.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Sources) != 2 || st.Sources[1].State != control.SourceMissing {
		t.Errorf("after reload: %+v; want the added source missing", st.Sources)
	}
}
