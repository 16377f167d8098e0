package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Handler answers requests; the daemon implements it.
type Handler interface {
	Status(ctx context.Context) Status
	List(ctx context.Context) []Ban
	Ban(ctx context.Context, r BanRequest) (BanResponse, error)
	Unban(ctx context.Context, r UnbanRequest) (UnbanResponse, error)
	Import(ctx context.Context, r ImportRequest) (ImportResponse, error)
	Why(ctx context.Context, r WhyRequest) (WhyResponse, error)
}

// Error is a request the handler refuses; Code is the HTTP status.
type Error struct {
	Code int
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// BadRequest returns an Error for a request that cannot be carried out as
// asked (exit code 1 in the CLI, with the message).
func BadRequest(format string, args ...any) error {
	return &Error{Code: http.StatusBadRequest, Msg: fmt.Sprintf(format, args...)}
}

// Listen opens the socket at path: its directory is created (0755) if
// missing, a stale socket left by a crash is removed, and a live one (a
// daemon already running) is an error. The socket is created mode 0600.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket directory: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s is in use: is sipguard already running?", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale control socket: %w", err)
		}
	}
	// Create the socket 0600 from the start: no window with looser rights.
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return &peerListener{Listener: l}, nil
}

// peerListener refuses connections from users other than root and the
// daemon's own user, whatever the socket's mode.
type peerListener struct{ net.Listener }

func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uid, err := peerUID(c)
		if err == nil && (uid == 0 || uid == os.Geteuid()) {
			return c, nil
		}
		c.Close()
	}
}

// Serve answers requests on l until ctx is done.
func Serve(ctx context.Context, l net.Listener, h Handler) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		reply(w, h.Status(r.Context()), nil)
	})
	mux.HandleFunc("GET /v1/bans", func(w http.ResponseWriter, r *http.Request) {
		reply(w, h.List(r.Context()), nil)
	})
	mux.HandleFunc("POST /v1/ban", func(w http.ResponseWriter, r *http.Request) {
		var req BanRequest
		if err := decode(r, &req); err != nil {
			reply(w, nil, err)
			return
		}
		res, err := h.Ban(r.Context(), req)
		reply(w, res, err)
	})
	mux.HandleFunc("POST /v1/unban", func(w http.ResponseWriter, r *http.Request) {
		var req UnbanRequest
		if err := decode(r, &req); err != nil {
			reply(w, nil, err)
			return
		}
		res, err := h.Unban(r.Context(), req)
		reply(w, res, err)
	})
	mux.HandleFunc("POST /v1/import", func(w http.ResponseWriter, r *http.Request) {
		var req ImportRequest
		if err := decodeMax(r, &req, 128<<20); err != nil {
			reply(w, nil, err)
			return
		}
		if len(req.Bans) > MaxImport {
			reply(w, nil, BadRequest("%d bans: at most %d per import", len(req.Bans), MaxImport))
			return
		}
		res, err := h.Import(r.Context(), req)
		reply(w, res, err)
	})
	mux.HandleFunc("POST /v1/why", func(w http.ResponseWriter, r *http.Request) {
		var req WhyRequest
		if err := decode(r, &req); err != nil {
			reply(w, nil, err)
			return
		}
		res, err := h.Why(r.Context(), req)
		reply(w, res, err)
	})
	servePolicy(mux, h)
	serveTrunks(mux, h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("control socket: %w", err)
	}
	return nil
}

func decode(r *http.Request, v any) error { return decodeMax(r, v, 64<<10) }

func decodeMax(r *http.Request, v any, max int64) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, max))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return BadRequest("bad request: %v", err)
	}
	return nil
}

func reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		code := http.StatusInternalServerError
		var ce *Error
		if errors.As(err, &ce) {
			code = ce.Code
		}
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	json.NewEncoder(w).Encode(v)
}
