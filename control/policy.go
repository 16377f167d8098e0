package control

import (
	"context"
	"net/http"
	"time"
)

// The access policy's requests (issue 15), served when the handler is a
// PolicyHandler:
//
//	GET  /v1/learned                          -> LearnedResponse
//	POST /v1/learned/forget ForgetRequest     -> ForgetResponse
//	POST /v1/policy/explain ExplainRequest    -> ExplainResponse

// PolicyHandler answers the policy's requests; the daemon implements it.
type PolicyHandler interface {
	Learned(ctx context.Context) (LearnedResponse, error)
	Forget(ctx context.Context, r ForgetRequest) (ForgetResponse, error)
	Explain(ctx context.Context, r ExplainRequest) (ExplainResponse, error)
}

// PolicyStatus is the access policy's part of Status.
type PolicyStatus struct {
	Mode    string `json:"mode"`    // open, strict, responsive
	Learned int    `json:"learned"` // addresses learned now
	// Refused counts the logins not learned since start: after failures,
	// after a compromise alert, or with too many learned already.
	Refused int64 `json:"learn_refused"`
}

// LearnedResponse lists the learned addresses: phones that logged in,
// admitted to the SIP ports until their time runs out.
type LearnedResponse struct {
	Mode            string    `json:"mode"` // open, strict, responsive
	LearnForSeconds float64   `json:"learn_for_seconds"`
	Learned         []Learned `json:"learned"`
}

// Learned is one learned address.
type Learned struct {
	Addr    string    `json:"addr"`
	Until   time.Time `json:"until"`
	Since   time.Time `json:"since"`   // its first login of this stretch
	Account string    `json:"account"` // the account of its last login (attacker-written text)
	Source  string    `json:"source"`  // the log it logged in on
}

// ForgetRequest asks to forget a learned address.
type ForgetRequest struct {
	Addr string `json:"addr"`
}

// Results of forget requests.
const (
	Forgotten  = "forgotten"
	NotLearned = "not_learned"
)

// ForgetResponse reports a forget.
type ForgetResponse struct {
	Result string `json:"result"`
}

// ExplainRequest asks what happens to a packet from Addr to Port
// ("5060/udp").
type ExplainRequest struct {
	Addr string `json:"addr"`
	Port string `json:"port"`
}

// Verdicts of ExplainResponse.
const (
	VerdictAccepted  = "accepted"  // admitted (allowlisted, learned)
	VerdictDropped   = "dropped"   // banned, or strict and unknown
	VerdictLimited   = "limited"   // responsive and unknown: metered
	VerdictUntouched = "untouched" // sipguard does not filter it
)

// ExplainResponse says what sipguard's chain does with such a packet, and
// why, in words and by the rule (the comment of the nftables rule, without
// "sipguard ") that decides it.
type ExplainResponse struct {
	Addr    string `json:"addr"`
	Port    string `json:"port"`
	Mode    string `json:"mode"`
	Verdict string `json:"verdict"`
	Rule    string `json:"rule,omitempty"`
	Why     string `json:"why"`
}

// servePolicy adds the policy's routes to mux when h serves them.
func servePolicy(mux *http.ServeMux, h Handler) {
	ph, ok := h.(PolicyHandler)
	if !ok {
		return
	}
	mux.HandleFunc("GET /v1/learned", func(w http.ResponseWriter, r *http.Request) {
		res, err := ph.Learned(r.Context())
		reply(w, res, err)
	})
	handlePost(mux, "POST /v1/learned/forget", ph.Forget)
	handlePost(mux, "POST /v1/policy/explain", ph.Explain)
}

// handlePost serves a POST of pattern: its JSON request, f's answer.
func handlePost[Req, Res any](mux *http.ServeMux, pattern string, f func(context.Context, Req) (Res, error)) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if err := decode(r, &req); err != nil {
			reply(w, nil, err)
			return
		}
		res, err := f(r.Context(), req)
		reply(w, res, err)
	})
}

// Learned lists the learned addresses.
func (c *Client) Learned(ctx context.Context) (LearnedResponse, error) {
	var res LearnedResponse
	return res, c.do(ctx, http.MethodGet, "/v1/learned", nil, &res)
}

// Forget asks to forget a learned address.
func (c *Client) Forget(ctx context.Context, addr string) (ForgetResponse, error) {
	var res ForgetResponse
	return res, c.do(ctx, http.MethodPost, "/v1/learned/forget", ForgetRequest{Addr: addr}, &res)
}

// Explain asks what happens to a packet from addr to port.
func (c *Client) Explain(ctx context.Context, addr, port string) (ExplainResponse, error) {
	var res ExplainResponse
	return res, c.do(ctx, http.MethodPost, "/v1/policy/explain", ExplainRequest{Addr: addr, Port: port}, &res)
}
