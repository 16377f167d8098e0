package control

import (
	"context"
	"net/http"
	"time"
)

// GET /v1/trunks -> []TrunkStatus: the trunks admitted by name
// ([[trunk]], and "allow" for the host names of [allow]).

// TrunkStatus describes a trunk: its networks and each host name's
// addresses.
type TrunkStatus struct {
	Name     string            `json:"name"`
	Networks []string          `json:"networks"`
	Hosts    []TrunkHostStatus `json:"hosts"`
}

// TrunkHostStatus describes one host name of a trunk.
type TrunkHostStatus struct {
	Host      string      `json:"host"`
	Addresses []TrunkAddr `json:"addresses"` // admitted now
	// TTLSeconds is the last answer's TTL, clamped to [min_ttl, max_ttl]:
	// the host is resolved again then.
	TTLSeconds  float64   `json:"ttl_seconds"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastTry     time.Time `json:"last_try,omitzero"`
	Next        time.Time `json:"next,omitzero"`
	// Error is why the last resolution failed, since ErrorSince; the last
	// good answer's addresses are kept until keep after it.
	Error      string    `json:"error,omitempty"`
	ErrorSince time.Time `json:"error_since,omitzero"`
}

// TrunkAddr is an address a trunk's host name resolved to.
type TrunkAddr struct {
	Address  string    `json:"address"`
	Answered time.Time `json:"answered"` // the last answer that held it
	Until    time.Time `json:"until"`    // dropped then unless answered again
}

// TrunksHandler is a Handler that also reports trunks (GET /v1/trunks).
type TrunksHandler interface {
	Trunks(ctx context.Context) []TrunkStatus
}

// serveTrunks adds GET /v1/trunks when h reports trunks.
func serveTrunks(mux *http.ServeMux, h Handler) {
	th, ok := h.(TrunksHandler)
	if !ok {
		return
	}
	mux.HandleFunc("GET /v1/trunks", func(w http.ResponseWriter, r *http.Request) {
		reply(w, th.Trunks(r.Context()), nil)
	})
}

// Trunks returns the trunks admitted by name.
func (c *Client) Trunks(ctx context.Context) ([]TrunkStatus, error) {
	var t []TrunkStatus
	return t, c.do(ctx, http.MethodGet, "/v1/trunks", nil, &t)
}
