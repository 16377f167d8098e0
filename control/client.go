package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"syscall"
	"time"
)

// Client talks to a daemon's control socket.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	return &Client{
		socket: path,
		http: &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			}},
		},
	}
}

// ErrNotRunning means no daemon answers on the socket.
var ErrNotRunning = errors.New("sipguard is not running")

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://sipguard"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.dialError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.NewDecoder(resp.Body).Decode(&e) != nil || e.Error == "" {
			e.Error = resp.Status
		}
		return &Error{Code: resp.StatusCode, Msg: e.Error}
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("read reply: %w", err)
	}
	return nil
}

// dialError explains why the socket could not be reached.
func (c *Client) dialError(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w (no daemon on %s; start it with `sipguard run`, or give its config with -c)", ErrNotRunning, c.socket)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF):
		return fmt.Errorf("cannot use the control socket %s: permission denied (run as root)", c.socket)
	}
	return fmt.Errorf("control socket %s: %w", c.socket, err)
}

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
}

// List returns the bans in force.
func (c *Client) List(ctx context.Context) ([]Ban, error) {
	var b []Ban
	return b, c.do(ctx, http.MethodGet, "/v1/bans", nil, &b)
}

// Ban asks for a manual ban.
func (c *Client) Ban(ctx context.Context, r BanRequest) (BanResponse, error) {
	var res BanResponse
	return res, c.do(ctx, http.MethodPost, "/v1/ban", r, &res)
}

// Import asks for many manual bans at once.
func (c *Client) Import(ctx context.Context, r ImportRequest) (ImportResponse, error) {
	var res ImportResponse
	return res, c.do(ctx, http.MethodPost, "/v1/import", r, &res)
}

// Unban asks to lift bans.
func (c *Client) Unban(ctx context.Context, r UnbanRequest) (UnbanResponse, error) {
	var res UnbanResponse
	return res, c.do(ctx, http.MethodPost, "/v1/unban", r, &res)
}

// Why asks what the daemon holds about an address or network.
func (c *Client) Why(ctx context.Context, target string) (WhyResponse, error) {
	var res WhyResponse
	return res, c.do(ctx, http.MethodPost, "/v1/why", WhyRequest{Target: target}, &res)
}
