package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// maxResponse is how much of a response body is read: enough for the
// connection to be reused after an ordinary answer, never so much that an
// endpoint can keep the worker reading.
const maxResponse = 64 << 10

// reservedHeaders are set by sipguard or by the HTTP client; Headers may not
// change them.
var reservedHeaders = []string{"Connection", "Content-Length", "Content-Type", "Host", "Transfer-Encoding", "User-Agent"}

// webhook delivers Events as JSON POSTs.
type webhook struct {
	url     string
	headers http.Header
	timeout time.Duration
	retries int
	client  *http.Client
	tr      *http.Transport
	d       *Dispatcher // for the backoff, which tests shorten
}

// problems lists what is wrong with h.
func (h Webhook) problems() []error {
	errs := checkCommon(h.Name, h.Events, h.Timeout, h.Queue)
	if err := checkURL(h.URL); err != nil {
		errs = append(errs, fieldError("url", err))
	}
	if h.Retries < 0 {
		errs = append(errs, fieldError("retries", fmt.Errorf("must be >= 0 (got %d)", h.Retries)))
	}
	for _, k := range slices.Sorted(maps.Keys(h.Headers)) {
		ck := http.CanonicalHeaderKey(k)
		switch {
		case !validHeaderName(k):
			errs = append(errs, fieldError("headers", fmt.Errorf("invalid name %q", k)))
		case slices.Contains(reservedHeaders, ck):
			errs = append(errs, fieldError("headers", fmt.Errorf("%q is set by sipguard", ck)))
		case !validHeaderValue(h.Headers[k]):
			// The value is not quoted: it is often a secret.
			errs = append(errs, fieldError("headers", fmt.Errorf("value of %q holds a control character", ck)))
		}
	}
	return errs
}

// newWebhook returns the deliverer of a valid h.
func newWebhook(h Webhook, d *Dispatcher) *webhook {
	hdr := http.Header{}
	for _, k := range slices.Sorted(maps.Keys(h.Headers)) {
		hdr.Set(http.CanonicalHeaderKey(k), h.Headers[k])
	}
	timeout := h.Timeout
	if timeout == 0 {
		timeout = DefaultWebhookTimeout
	}
	// A transport of its own, so the worker can close its connections when
	// it stops; proxies as for any other HTTP client.
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          2,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &webhook{
		url:     h.URL,
		headers: hdr,
		timeout: timeout,
		retries: h.Retries,
		tr:      tr,
		client: &http.Client{
			Transport: tr,
			// Never follow a redirect: it could take the Event and the
			// Authorization header to another host. A 3xx is a failure.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		d: d,
	}
}

// checkURL accepts absolute http and https URLs with a host. Its errors do
// not quote the URL, whose path may be a secret.
func checkURL(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	u, err := url.Parse(s)
	if err != nil {
		return unwrapURL(err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q: must be http or https", u.Scheme)
	}
	if u.Hostname() == "" {
		return errors.New("no host")
	}
	return nil
}

// deliver POSTs ev, retrying as the package documentation says, until it is
// delivered, given up on, or ctx is done.
func (w *webhook) deliver(ctx context.Context, ev Event) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	for n := 0; ; n++ {
		retry, err := w.post(ctx, body)
		if err == nil {
			return nil
		}
		if w.retries > 0 {
			err = fmt.Errorf("attempt %d of %d: %w", n+1, w.retries+1, err)
		}
		if !retry || n == w.retries {
			return err
		}
		t := time.NewTimer(w.d.backoff(n))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// post makes one attempt. retry tells whether a failure is worth another.
func (w *webhook) post(ctx context.Context, body []byte) (retry bool, err error) {
	actx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("request: %w", unwrapURL(err))
	}
	req.Header = w.headers.Clone()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sipguard")
	resp, err := w.client.Do(req)
	if err != nil {
		if ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
			return true, fmt.Errorf("no answer within %v", w.timeout)
		}
		return true, unwrapURL(err)
	}
	// Drain a little so the connection can be reused; a longer body costs
	// a new connection, not more reading.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	_ = resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c <= 299:
		return false, nil
	case c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500:
		return true, fmt.Errorf("status %s", resp.Status)
	case c >= 300 && c <= 399:
		return false, fmt.Errorf("status %s (redirects are not followed)", resp.Status)
	default:
		return false, fmt.Errorf("status %s", resp.Status)
	}
}

// close lets the idle connections go when the worker stops.
func (w *webhook) close() { w.tr.CloseIdleConnections() }

// unwrapURL removes the "Post \"URL\": " that net/url and net/http put
// before their errors: the URL may hold a secret.
func unwrapURL(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validHeaderValue rejects control characters but tab: a CR or LF would
// end the header and start another.
func validHeaderValue(s string) bool {
	for _, c := range []byte(s) {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
