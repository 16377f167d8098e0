// Package control is the daemon's control socket: a small JSON protocol
// over HTTP on a unix socket, used by `sipguard status|list|ban|unban`.
// The socket is mode 0600 and the server also checks each caller's
// credentials, so only root (or the daemon's own user) can talk to it.
//
// Requests and responses (field names are a stable contract):
//
//	GET  /v1/status               -> Status
//	GET  /v1/bans                 -> []Ban
//	POST /v1/ban   BanRequest     -> BanResponse
//	POST /v1/unban UnbanRequest   -> UnbanResponse
//	POST /v1/import ImportRequest -> ImportResponse
//	POST /v1/why   WhyRequest     -> WhyResponse
//	GET  /v1/trunks               -> []TrunkStatus
//
// and the access policy's (policy.go): /v1/learned, /v1/learned/forget,
// /v1/policy/explain.
//
// Errors are {"error": "..."} with a 4xx or 5xx status.
package control

import (
	"time"
)

// Status describes a running daemon.
type Status struct {
	Version       string         `json:"version"`
	PID           int            `json:"pid"`
	Started       time.Time      `json:"started"`
	UptimeSeconds float64        `json:"uptime_seconds"`
	Config        string         `json:"config"`
	Sources       []SourceStatus `json:"sources"`
	Rules         []RuleStatus   `json:"rules"`
	Bans          int            `json:"bans"`
	// BansByCountry counts the bans in force by the ISO code of their
	// address's country ("unknown" when the database does not know it);
	// nil without a [geoip] database.
	BansByCountry map[string]int   `json:"bans_by_country,omitempty"`
	Unbans        map[string]int64 `json:"unbans_by_reason"` // since start: expired, manual, replaced, feed, allowlisted
	Feeds         []FeedStatus     `json:"feeds,omitempty"`
	Trunks        []TrunkStatus    `json:"trunks,omitempty"`
	Notify        []NotifyStatus   `json:"notify,omitempty"`
	Cluster       *ClusterStatus   `json:"cluster,omitempty"`
	Fraud         *FraudStatus     `json:"fraud,omitempty"`
	Engine        EngineStatus     `json:"engine"`
	Firewall      FirewallStatus   `json:"firewall"`
	Policy        PolicyStatus     `json:"policy"`
	State         StateStatus      `json:"state"`
}

// FraudStatus counts the calls the toll-fraud rules saw since start
// ([fraud], when enabled).
type FraudStatus struct {
	// Calls counts calls placed to public numbers, by where they go: the
	// ISO country code of an international call, "non_geographic" for a
	// non-geographic code (satellite, international networks), "unknown"
	// for a code not assigned, "national" otherwise. Only the calls the
	// rules check (placed by an account, in [fraud] contexts).
	Calls map[string]int64 `json:"calls_by_destination"`
	// Alerts counts the rules that fired, by rule.
	Alerts map[string]int64 `json:"alerts_by_rule"`
}

// SourceStatus describes one followed log. Its State is "reading",
// "missing" (the file or a directory on its path does not exist),
// "starting", or why the source is not read ("permission denied", "is a
// directory", a syslog listener's error).
type SourceStatus struct {
	Name      string           `json:"name"`
	Path      string           `json:"path"`
	Parser    string           `json:"parser"`
	State     string           `json:"state"`
	Waiting   bool             `json:"waiting"` // the file cannot be opened (kept for compatibility: see State)
	Offset    int64            `json:"offset"`  // bytes read and handled
	Inode     uint64           `json:"inode"`
	Lines     int64            `json:"lines"`
	Events    int64            `json:"events"` // failures
	EventsBy  map[string]int64 `json:"events_by_kind"`
	Successes int64            `json:"successes"` // auth_succeeded events
	Dropped   int64            `json:"dropped"`
	DropBy    map[string]int64 `json:"dropped_by_reason"`
	Rotated   int64            `json:"rotations"`
	// LFFramed counts a syslog source's TCP messages framed by a newline:
	// a newline inside a message would end it and forge another, tag
	// included. Senders should count octets.
	LFFramed int64  `json:"lf_framed,omitempty"`
	Error    string `json:"error,omitempty"`
}

// States of a source (SourceStatus.State) other than why it is not read.
const (
	SourceReading  = "reading"
	SourceMissing  = "missing"
	SourceStarting = "starting" // not looked at yet
)

// FeedStatus describes a blocklist feed.
type FeedStatus struct {
	Name     string    `json:"name"`
	Location string    `json:"location"` // URL (without credentials) or path
	Listed   int       `json:"listed"`   // entries of the last good list
	Enforced int       `json:"enforced"` // of those, in the firewall
	Skipped  int       `json:"skipped"`  // allowlisted, or overlapping another ban
	Invalid  int       `json:"invalid_lines"`
	TooWide  int       `json:"too_wide"`
	Special  int       `json:"special"` // special-purpose entries (loopback, link-local, ...): never banned
	LastLoad time.Time `json:"last_load,omitzero"`
	LastOK   time.Time `json:"last_ok,omitzero"`
	Loads    int64     `json:"loads"`
	Failures int64     `json:"failures"`
	Error    string    `json:"error,omitempty"` // of the last load, if it failed
}

// NotifyStatus describes a [[notify]] target.
type NotifyStatus struct {
	Name          string    `json:"name"`
	Kind          string    `json:"kind"` // webhook or command
	Sent          int64     `json:"sent"`
	Failed        int64     `json:"failed"`
	Dropped       int64     `json:"dropped"` // the queue was full, or the daemon stopped
	Queued        int       `json:"queued"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
}

// ClusterStatus describes this node's membership of a cluster ([cluster]).
type ClusterStatus struct {
	Node      string    `json:"node"`
	Servers   []string  `json:"servers"`
	Stream    string    `json:"stream"`
	Share     bool      `json:"share"`
	Accept    bool      `json:"accept"`
	Connected bool      `json:"connected"`
	Server    string    `json:"server,omitempty"` // connected to
	Since     time.Time `json:"since,omitzero"`   // connected or disconnected since
	CaughtUp  bool      `json:"caught_up"`        // has read the bans in force
	// StreamError: why the stream is not used (missing, not as expected).
	StreamError string `json:"stream_error,omitempty"`
	// ClockSkew: this node's clock minus the server's, in seconds;
	// PeerSkews: the other nodes' beyond 30 s.
	ClockSkew    float64            `json:"clock_skew"`
	ClockChecked time.Time          `json:"clock_checked,omitzero"`
	PeerSkews    map[string]float64 `json:"peer_clock_skews,omitempty"`
	Resyncs      int64              `json:"resyncs"` // times this node's bans were published again
	// Outgoing: this node's bans and cluster unbans.
	Published     int64 `json:"published"`
	Queued        int   `json:"queued"`         // waiting for the broker
	QueueDropped  int64 `json:"queue_dropped"`  // the queue was full
	Expired       int64 `json:"expired_queued"` // over before the broker came back
	PublishErrors int64 `json:"publish_errors"` // refused by the server for good
	// PublishRetries: not stored at once (storage full, stream away), retried.
	PublishRetries int64 `json:"publish_retries"`
	// Incoming: other nodes' messages.
	Received    int64            `json:"received"`
	Applied     int64            `json:"applied"`
	Ignored     map[string]int64 `json:"ignored_by_reason"` // own, allowlisted, known, unbanned, ...
	Malformed   int64            `json:"malformed"`
	Oversize    int64            `json:"oversize"`
	LastError   string           `json:"last_error,omitempty"`
	LastErrorAt time.Time        `json:"last_error_time,omitzero"`
}

// RuleStatus describes one rule. Durations are in seconds, as every
// duration of Status is.
type RuleStatus struct {
	Name       string   `json:"name"`
	Events     []string `json:"events"`
	MaxRetry   int      `json:"max_retry"`
	FindTime   float64  `json:"find_time_seconds"`
	BanTime    float64  `json:"ban_time_seconds"`
	Factor     float64  `json:"factor"`
	MaxBanTime float64  `json:"max_ban_time_seconds,omitempty"`
	Bans       int64    `json:"bans"` // decided since the daemon started
	// Ports are the rule's own ports, when it has some: its bans drop
	// traffic to those only ("80/tcp,443/tcp").
	Ports string `json:"ports,omitempty"`
}

// EngineStatus counts what the rate engine did.
type EngineStatus struct {
	Events  int64 `json:"events"`
	Allowed int64 `json:"allowlisted"`
	// Special counts events dropped because a ban of their address (or
	// its IPv6 prefix) would cover special-purpose addresses: loopback,
	// link-local, ...
	Special     int64 `json:"special"`
	WhileBanned int64 `json:"while_banned"`
	Bans        int64 `json:"bans"`
	// Narrowed counts IPv6 bans narrowed to the address: its prefix holds
	// an allowlisted address.
	Narrowed int64 `json:"narrowed"`
	Stale    int64 `json:"stale_bans"` // decided on old lines, already over
	Tracked  int   `json:"tracked"`
	Evicted  int64 `json:"evicted"`
	// Compromises counts successful logins after failures (see [compromise]).
	Compromises int64 `json:"compromises"`
}

// FirewallStatus describes the backend enforcing bans.
type FirewallStatus struct {
	Backend string   `json:"backend"`
	Table   string   `json:"table,omitempty"`
	Hooks   []string `json:"hooks,omitempty"`
	Bans    int      `json:"bans"`
	Packets uint64   `json:"packets_dropped"`
	Bytes   uint64   `json:"bytes_dropped"`
	Allowed uint64   `json:"packets_allowed"` // from allowlisted sources, let through ahead of the bans
	// WireCopied counts the SIP responses the wire sensor's rules copied
	// to its NFLOG group ([wire]); the "wire" source counts those read.
	WireCopied uint64 `json:"wire_packets_copied,omitempty"`
	// PolicyDropped: packets to the SIP ports that [policy] strict or
	// responsive dropped (Packets excludes them).
	PolicyDropped uint64 `json:"packets_policy_dropped,omitempty"`
	// Refused counts bans refused as they reached the firewall because
	// they covered an allowlisted address (each origin refuses them
	// before: this is the last guard).
	Refused int64 `json:"refused_allowlisted"`
	// RefusedSpecial counts the same for bans covering special-purpose
	// addresses (loopback, link-local, ...).
	RefusedSpecial int64     `json:"refused_special"`
	Restored       int       `json:"restored"`
	Errors         int64     `json:"errors"` // ban or unban calls the backend refused since start
	LastCheck      time.Time `json:"last_check,omitzero"`
	Error          string    `json:"error,omitempty"`
}

// StateStatus describes the saved state.
type StateStatus struct {
	Dir       string    `json:"dir"`
	LastSaved time.Time `json:"last_saved,omitzero"`
	Error     string    `json:"error,omitempty"`
}

// Ban is a ban in force.
type Ban struct {
	// Target is the address or network banned.
	Target string `json:"target"`
	// Rule is the rule that decided it, or "manual".
	Rule    string    `json:"rule"`
	Reason  string    `json:"reason,omitempty"`
	Since   time.Time `json:"since"`
	Expires time.Time `json:"expires"`
	// Count is the number of events that triggered a rule's ban.
	Count  int    `json:"count,omitempty"`
	Source string `json:"source,omitempty"`
	// Origin is the cluster node that decided it, when not this one.
	Origin string `json:"origin,omitempty"`
	// Ports are the ports the ban drops traffic to, when not [firewall]
	// ports: its rule's own ("80/tcp,443/tcp"). A target banned in
	// several ports profiles is listed once per profile.
	Ports string `json:"ports,omitempty"`
	// Country is the ISO code of the address (or of the network's first
	// address) when the daemon has a [geoip] database that knows it.
	Country string `json:"country,omitempty"`
	// CoveredBy is the wider network ban in force that holds this one
	// (the kernel holds no overlapping networks): the kernel holds that
	// one only, and this one again once that one goes.
	CoveredBy string `json:"covered_by,omitempty"`
}

// BanRequest asks for a manual ban. For is a duration such as "1h" or
// "7d"; empty means the daemon's default for manual bans.
type BanRequest struct {
	Target string `json:"target"`
	For    string `json:"for,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Force bans a network wider than an IPv4 /8 or an IPv6 /19.
	Force bool `json:"force,omitempty"`
}

// Results of ban and unban requests.
const (
	Banned          = "banned"
	AlreadyBanned   = "already_banned" // banned before; its expiry was set anew
	Unbanned        = "unbanned"
	AlreadyUnbanned = "already_unbanned"
)

// BanResponse reports a ban.
type BanResponse struct {
	Result string `json:"result"`
	Ban    Ban    `json:"ban"`
	// Kept: the target was banned already, for longer than asked; that
	// ban stays as it was (Ban shows it).
	Kept bool `json:"kept,omitempty"`
}

// ImportRequest asks for many manual bans at once (sipguard import): one
// firewall transaction and one save, however many there are.
type ImportRequest struct {
	Bans []BanRequest `json:"bans"`
}

// ImportResponse reports an import. Refused entries (allowlisted,
// inside another network of the import, malformed) are listed with why,
// and the rest is done.
type ImportResponse struct {
	Banned  int `json:"banned"`
	Renewed int `json:"renewed"` // banned before; expiry set anew
	Kept    int `json:"kept"`    // banned before, for longer: kept as it was
	// Covered: of the banned and renewed, the networks inside a wider ban
	// in force, recorded and put in the kernel when that one goes.
	Covered int      `json:"covered,omitempty"`
	Refused []string `json:"refused"`
}

// MaxImport bounds the bans of one import request.
const MaxImport = 1000000

// UnbanRequest asks to lift the ban of Target, or every ban with All.
// Unbanning also clears the address's counters and offence history.
type UnbanRequest struct {
	Target  string `json:"target,omitempty"`
	All     bool   `json:"all,omitempty"`
	Cluster bool   `json:"cluster,omitempty"` // on every node of the cluster
}

// UnbanResponse reports an unban.
type UnbanResponse struct {
	Result   string   `json:"result"`
	Unbanned []string `json:"unbanned"`
	Cluster  bool     `json:"cluster,omitempty"` // queued for the cluster as well
}

// WhyRequest asks what the daemon holds about an address or network.
type WhyRequest struct {
	Target string `json:"target"`
}

// WhyResponse explains an address or network (sipguard why): whether it
// is allowlisted, the bans in force overlapping it, the engine's windows
// for it now, and the log lines that led to its bans (kept for the last
// bans made since the daemon started; text written by attackers).
type WhyResponse struct {
	Target      string    `json:"target"`
	Allowlisted string    `json:"allowlisted_by,omitempty"` // the [allow] entry that holds it, "(trunk NAME)" after a trunk's
	CountedAs   string    `json:"counted_as,omitempty"`     // what the engine counts and bans it as (an address)
	Bans        []Ban     `json:"bans"`
	Rules       []WhyRule `json:"rules"` // an address's events in each rule's window now
	Offences    int       `json:"offences"`
	Lines       []WhyLine `json:"lines"`
}

// WhyRule is an address's standing with one rule.
type WhyRule struct {
	Name     string  `json:"name"`
	Events   int     `json:"events"` // in the window now
	MaxRetry int     `json:"max_retry"`
	FindTime float64 `json:"find_time_seconds"`
}

// WhyLine is a log line that counted toward a ban.
type WhyLine struct {
	Ban    string    `json:"ban"` // the ban it led to
	Source string    `json:"source"`
	Line   int64     `json:"line"`
	Time   time.Time `json:"time"`
	Text   string    `json:"text"`
}
