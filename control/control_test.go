package control_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/internal/testutil"
)

type fakeHandler struct{ bans []control.Ban }

func (h *fakeHandler) Status(context.Context) control.Status {
	return control.Status{Version: "test", Bans: len(h.bans)}
}
func (h *fakeHandler) List(context.Context) []control.Ban { return h.bans }
func (h *fakeHandler) Ban(_ context.Context, r control.BanRequest) (control.BanResponse, error) {
	if r.Target == "bad" {
		return control.BanResponse{}, control.BadRequest("%q is not an address", r.Target)
	}
	b := control.Ban{Target: r.Target, Rule: "manual", Reason: r.Reason}
	h.bans = append(h.bans, b)
	return control.BanResponse{Result: control.Banned, Ban: b}, nil
}
func (h *fakeHandler) Unban(_ context.Context, r control.UnbanRequest) (control.UnbanResponse, error) {
	return control.UnbanResponse{Result: control.Unbanned, Unbanned: []string{r.Target}}, nil
}
func (h *fakeHandler) Why(_ context.Context, r control.WhyRequest) (control.WhyResponse, error) {
	return control.WhyResponse{Target: r.Target, Bans: h.bans}, nil
}
func (h *fakeHandler) Import(ctx context.Context, r control.ImportRequest) (control.ImportResponse, error) {
	var res control.ImportResponse
	for _, b := range r.Bans {
		if _, err := h.Ban(ctx, b); err != nil {
			res.Refused = append(res.Refused, err.Error())
			continue
		}
		res.Banned++
	}
	return res, nil
}

func serve(t *testing.T) (string, *fakeHandler) {
	t.Helper()
	return serveAt(t, filepath.Join(t.TempDir(), "run", "sipguard.sock"))
}

func serveAt(t *testing.T, path string) (string, *fakeHandler) {
	t.Helper()
	l, err := control.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &fakeHandler{}
	done := make(chan struct{})
	go func() { control.Serve(ctx, l, h); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return path, h
}

func TestRoundTrip(t *testing.T) {
	path, _ := serve(t)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v %v", fi.Mode(), err)
	}
	c := control.NewClient(path)
	ctx := context.Background()
	res, err := c.Ban(ctx, control.BanRequest{Target: "198.51.100.7", For: "1h", Reason: "test"})
	if err != nil || res.Result != control.Banned || res.Ban.Reason != "test" {
		t.Fatalf("ban: %+v %v", res, err)
	}
	bans, err := c.List(ctx)
	if err != nil || len(bans) != 1 || bans[0].Target != "198.51.100.7" {
		t.Fatalf("list: %+v %v", bans, err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Bans != 1 {
		t.Fatalf("status: %+v %v", st, err)
	}
	_, err = c.Ban(ctx, control.BanRequest{Target: "bad"})
	var ce *control.Error
	if !errors.As(err, &ce) || ce.Code != http.StatusBadRequest || !strings.Contains(err.Error(), "not an address") {
		t.Errorf("bad ban: %v", err)
	}
}

func TestNotRunning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sipguard.sock")
	_, err := control.NewClient(path).Status(context.Background())
	if !errors.Is(err, control.ErrNotRunning) || !strings.Contains(err.Error(), path) {
		t.Errorf("err = %v", err)
	}
	// A stale socket left by a crash: still "not running", and a new daemon
	// can take its place.
	l, _ := control.Listen(path)
	l.(interface{ Close() error }).Close()
	if _, err := control.NewClient(path).Status(context.Background()); !errors.Is(err, control.ErrNotRunning) {
		t.Errorf("stale socket: %v", err)
	}
}

func TestSecondDaemonRefused(t *testing.T) {
	path, _ := serve(t)
	if _, err := control.Listen(path); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second Listen: %v", err)
	}
}

// TestNonRootRefused connects as nobody, even with the socket's mode
// opened up: the server checks the caller's credentials.
func TestNonRootRefused(t *testing.T) {
	testutil.NeedRoot(t, "to run a client as another user")
	if os.Getenv("SIPGUARD_CONTROL_CLIENT") != "" {
		return
	}
	// A directory nobody can enter, holding the socket and a copy of the
	// test binary (the build directory is private).
	dir, err := os.MkdirTemp("", "sgctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "control.test")
	self, _ := os.ReadFile(os.Args[0])
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	path, _ := serveAt(t, filepath.Join(dir, "sipguard.sock"))
	for _, mode := range []os.FileMode{0o600, 0o666} {
		os.Chmod(path, mode)
		cmd := exec.Command(bin, "-test.run=^TestNobodyClient$")
		cmd.Env = append(os.Environ(), "SIPGUARD_CONTROL_CLIENT="+path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		t.Logf("mode %v: %s", mode, strings.TrimSpace(string(out[:min(len(out), 300)])))
		if err != nil || !strings.Contains(string(out), "refused:") {
			t.Errorf("mode %v: nobody was not refused: %v\n%s", mode, err, out)
		}
	}
}

// TestNobodyClient runs as nobody in TestNonRootRefused's subprocess.
func TestNobodyClient(t *testing.T) {
	path := testutil.SubprocessOnly(t, "SIPGUARD_CONTROL_CLIENT") // of TestNonRootRefused
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := control.NewClient(path).Status(ctx)
	if err == nil {
		t.Fatal("nobody got the status")
	}
	t.Logf("refused: %v", err)
	os.Stdout.WriteString("refused: " + err.Error() + "\n")
}
