// Package cluster shares bans between sipguard nodes through a NATS
// JetStream stream.
//
// Every node publishes the bans its own rules decide (and its manual bans)
// on its own subjects; every node reads the stream and enforces the others'
// bans in its own firewall. The stream keeps the last message of each
// subject until the ban it carries expires (a per-message TTL), so a node
// that starts, or comes back after the broker or the network failed,
// catches up on the bans in force by reading it.
//
// Nothing here is in the path of a local ban: bans to share go to a bounded
// queue, and a broker that is down only makes that queue wait.
package cluster

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Config is a node's [cluster] section.
type Config struct {
	Servers  []string // nats://host:4222, tls://host:4222
	Name     string   // this node: a subject token
	Creds    string   // a .creds file (JWT and nkey seed)
	NKey     string   // a file holding an nkey seed
	User     string
	Password string
	CA       string // the CA that signed the servers' certificates
	Cert     string // a client certificate, with Key
	Key      string

	Stream  string // the JetStream stream, made by the operator
	Subject string // subject prefix
	// CreateStream: create the stream when it is missing (labs: in
	// production the operator creates it, and nodes may not).
	CreateStream bool
	// Share: publish this node's bans; Rules limits that to the bans of
	// these rules ("manual" for `sipguard ban`), all when empty.
	Share  bool
	Rules  []string
	Accept bool // enforce the bans of other nodes
	Queue  int  // bans waiting for the broker, at most
	// MaxAge bounds how long the stream keeps anything, whatever its TTL.
	MaxAge time.Duration
}

// Defaults.
const (
	DefaultStream  = "SIPGUARD_BANS"
	DefaultSubject = "sipguard"
	DefaultQueue   = 100000
	DefaultMaxAge  = 90 * 24 * time.Hour
)

// UpdateKind says what an Update does.
type UpdateKind int

// Kinds of updates.
const (
	UpdateBan    UpdateKind = iota // enforce Ban
	UpdateLifted                   // Ban's origin lifted it
	UpdateUnban                    // lift the bans of Unban.Target made before Unban.Time
)

// Update is a message from another node, checked.
type Update struct {
	Kind  UpdateKind
	Ban   Ban
	Unban Unban
}

// Local is the daemon, as a node sees it.
type Local interface {
	// Apply enforces updates, in order, and returns how many ended how
	// ("applied", "allowlisted", "known", ...).
	Apply(ctx context.Context, updates []Update) (map[string]int, error)
	// Own returns the bans in force this node decided, to publish again
	// when the stream lost them.
	Own(ctx context.Context) ([]Ban, error)
}

// outgoing is a message waiting for the broker.
type outgoing struct {
	subject string
	w       wire
	id      string
	expires time.Time // when the stream may forget it
	tries   int       // refusals while connected
}

// Node is this daemon's membership of the cluster. Create it with New,
// then call Run; Publish and PublishUnban may be called at any time.
type Node struct {
	cfg   Config
	local Local
	log   zerolog.Logger
	now   func() time.Time

	mu        sync.Mutex
	queue     []outgoing // oldest first
	wake      chan struct{}
	st        Stats
	ignored   map[string]int64
	connected chan struct{} // closed while connected; replaced on disconnect
	session   int           // connections made
	// resyncWanted: publish this node's bans again (the stream was read
	// from scratch: it may have lost them).
	resyncWanted bool
	closing      bool         // Run is ending
	serverAddrs  []netip.Addr // the servers' addresses, resolved
	// ready is closed while connected with the stream checked: then, and
	// only then, the publisher publishes.
	ready      chan struct{}
	usable     bool          // ready is closed
	recheck    chan struct{} // check the stream now
	streamLog  time.Time     // the stream's problem last logged
	denied     time.Time     // the server last refused a publish for want of permission
	peerSkews  map[string]time.Duration
	skewWarned map[string]time.Time // by node, "" for this one
}

// encode writes the message as sent at now.
func (o outgoing) encode(now time.Time) []byte {
	o.w.Sent = now.UTC()
	return o.w.encode()
}

// withDefaults fills what c leaves out.
func (c Config) withDefaults() Config {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.Subject == "" {
		c.Subject = DefaultSubject
	}
	if c.Queue <= 0 {
		c.Queue = DefaultQueue
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	return c
}

// New checks cfg and returns a node of the cluster.
func New(cfg Config, local Local, log zerolog.Logger) (*Node, error) {
	if !ValidName(cfg.Name) {
		return nil, fmt.Errorf("cluster: node name %q: use letters, digits, - and _ (at most 64)", cfg.Name)
	}
	if len(cfg.Servers) == 0 {
		return nil, errors.New("cluster: no servers")
	}
	cfg = cfg.withDefaults()
	n := &Node{
		cfg: cfg, local: local, log: log.With().Str("component", "cluster").Logger(), now: time.Now,
		wake: make(chan struct{}, 1), ignored: map[string]int64{}, connected: make(chan struct{}),
		ready: make(chan struct{}), recheck: make(chan struct{}, 1), peerSkews: map[string]time.Duration{},
		skewWarned: map[string]time.Time{},
	}
	n.st = Stats{Node: cfg.Name, Stream: cfg.Stream, Share: cfg.Share, Accept: cfg.Accept}
	for _, s := range cfg.Servers {
		if u, err := url.Parse(s); err == nil && u.User != nil {
			u.User = nil // status shows no password written into a URL
			s = u.String()
		}
		n.st.Servers = append(n.st.Servers, s)
	}
	return n, nil
}

// connectTimeout bounds a connection's setup (dial, TLS, handshake).
const connectTimeout = 10 * time.Second

// InboxPrefix is where the node's replies come: its permissions must let
// it subscribe to InboxPrefix(name)+".>".
func InboxPrefix(name string) string { return "_INBOX_" + name }

// Shares reports whether a ban of rule is published.
func (n *Node) Shares(rule string) bool {
	return n.cfg.Share && (len(n.cfg.Rules) == 0 || slices.Contains(n.cfg.Rules, rule))
}

// Publish queues a ban of this node for the cluster, if its rule is shared.
// It never blocks: when the queue is full the oldest message is dropped.
func (n *Node) Publish(b Ban) {
	if !n.Shares(b.Rule) {
		return
	}
	n.publishBan(b, typeBan)
}

func (n *Node) publishBan(b Ban, typ string) {
	b.Origin = n.cfg.Name
	if tooWide(b.Target) {
		n.log.Warn().Str("prefix", b.Target.String()).Msg("ban too wide to share with the cluster; enforced here only")
		return
	}
	expires := b.Expires
	if typ == typeLifted {
		expires = n.now().Add(time.Hour) // it only replaces the ban in the stream
	}
	n.enqueue(outgoing{
		subject: banSubject(n.cfg.Subject, n.cfg.Name, b.Target), w: banWire(b, typ), expires: expires,
		id: msgID(),
	})
}

// PublishLifted says this node lifted a ban it shared (on a cluster unban),
// so that the stream forgets it.
func (n *Node) PublishLifted(b Ban) {
	if n.Shares(b.Rule) {
		n.publishBan(b, typeLifted)
	}
}

// PublishUnban queues a cluster unban.
func (n *Node) PublishUnban(u Unban) error {
	u.Origin = n.cfg.Name
	if tooWide(u.Target) {
		return fmt.Errorf("%s is wider than a cluster ban can be (/%d, /%d)", u.Target, MinBits4, MinBits6)
	}
	n.enqueue(outgoing{
		subject: unbanSubject(n.cfg.Subject, n.cfg.Name, u.Target), w: unbanWire(u), expires: u.Until,
		id: msgID(),
	})
	return nil
}

// msgID is a message's Nats-Msg-Id: random, kept across the message's
// retries so that the stream stores it once. The stream deduplicates IDs
// across all subjects: an ID another node could predict (from the
// target and the expiry) could be published first on that node's own
// subject, and this node's message would be dropped as a duplicate while
// the server reports success.
func msgID() string { return rand.Text() }

func tooWide(p netip.Prefix) bool {
	return p.Addr().Is4() && p.Bits() < MinBits4 || p.Addr().Is6() && p.Bits() < MinBits6
}

func (n *Node) enqueue(o outgoing) {
	n.mu.Lock()
	if len(n.queue) >= n.cfg.Queue {
		n.queue = n.queue[1:]
		n.st.QueueDropped++
	}
	n.queue = append(n.queue, o)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Stats reports the node's connection and counters.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := n.st
	st.Queued = len(n.queue)
	st.Ignored = make(map[string]int64, len(n.ignored))
	for k, v := range n.ignored {
		st.Ignored[k] = v
	}
	st.PeerSkews = map[string]time.Duration{}
	for k, v := range n.peerSkews {
		if v.Abs() > skewWarn {
			st.PeerSkews[k] = v
		}
	}
	return st
}

func (n *Node) count(f func(st *Stats)) {
	n.mu.Lock()
	f(&n.st)
	n.mu.Unlock()
}

func (n *Node) fail(err error) {
	n.count(func(st *Stats) { st.LastError = err.Error(); st.LastErrorAt = n.now() })
}

// Run connects and keeps the node in the cluster until ctx is done. A broker
// that cannot be reached is retried for ever; only a configuration that
// cannot work (unreadable credentials) is an error.
func (n *Node) Run(ctx context.Context) error {
	opts, err := n.options()
	if err != nil {
		return err
	}
	nc, err := nats.Connect(strings.Join(n.cfg.Servers, ","), opts...)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	defer func() {
		n.mu.Lock()
		n.closing = true // a disconnection now is no news
		n.mu.Unlock()
		nc.Close()
	}()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(512), jetstream.WithPublishAsyncTimeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); n.publisher(ctx, js) }()
	go func() { defer wg.Done(); n.subscriber(ctx, js) }()
	go func() { defer wg.Done(); n.resolveServers(ctx) }()
	<-ctx.Done()
	wg.Wait()
	return nil
}

// Servers returns the addresses of the NATS servers, as last resolved: a
// ban from the cluster must never cut the cluster off them.
func (n *Node) Servers() []netip.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.serverAddrs
}

// resolveServers looks the servers' addresses up now and every 10 minutes,
// keeping the last answer when a lookup fails.
func (n *Node) resolveServers(ctx context.Context) {
	for {
		var addrs []netip.Addr
		for _, s := range n.cfg.Servers {
			u, err := url.Parse(s)
			if err != nil {
				continue
			}
			if a, err := netip.ParseAddr(u.Hostname()); err == nil {
				addrs = append(addrs, a.Unmap())
				continue
			}
			lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			found, err := net.DefaultResolver.LookupNetIP(lctx, "ip", u.Hostname())
			cancel()
			if err != nil {
				n.log.Warn().Err(err).Str("server", u.Hostname()).Msg("cannot resolve a NATS server's address")
				addrs = nil
				break
			}
			for _, a := range found {
				addrs = append(addrs, a.Unmap())
			}
		}
		if addrs != nil {
			n.mu.Lock()
			n.serverAddrs = addrs
			n.mu.Unlock()
		}
		if !sleep(ctx, 10*time.Minute) {
			return
		}
	}
}

// options are the connection's: reconnect for ever, no client-side buffer
// (the queue is ours), the credentials configured, logs on every change.
func (n *Node) options() ([]nats.Option, error) {
	c := n.cfg
	opts := []nats.Option{
		// Replies come to the node's own inbox subjects, so the server can
		// let each node read its own replies and nobody else's.
		nats.CustomInboxPrefix(InboxPrefix(c.Name)),
		nats.Name("sipguard " + c.Name), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second),
		// A server that a whole fleet reconnects to at once (it
		// restarted) answers slowly: with the default 2 s, 1,500 nodes
		// made twice as many connections as needed, each timed-out
		// attempt adding to the server's work (BenchmarkCluster).
		nats.Timeout(connectTimeout),
		nats.RetryOnFailedConnect(true), nats.ReconnectBufSize(-1), nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.ConnectHandler(n.up), nats.ReconnectHandler(n.up),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			n.mu.Lock()
			if n.st.Connected {
				n.connected = make(chan struct{})
			}
			n.unready()
			n.st.Connected, n.st.Server, n.st.Since = false, "", n.now()
			closing := n.closing
			n.mu.Unlock()
			if closing {
				return
			}
			ev := n.log.Warn()
			if err != nil {
				ev = ev.Err(err)
			}
			ev.Msg("disconnected from the NATS server: local bans go on; sharing waits")
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			// Tried every second while the server is away: log what changes.
			n.mu.Lock()
			same := n.st.LastError == err.Error()
			n.mu.Unlock()
			n.fail(err)
			if !same {
				n.log.Warn().Err(err).Msg("cannot connect to the NATS server; retrying every second")
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				n.mu.Lock()
				n.denied = time.Now()
				n.mu.Unlock()
			}
			n.fail(err)
			n.log.Error().Err(err).Msg("NATS")
		}),
	}
	switch {
	case c.Creds != "":
		opts = append(opts, nats.UserCredentials(c.Creds))
	case c.NKey != "":
		o, err := nats.NkeyOptionFromSeed(c.NKey)
		if err != nil {
			return nil, fmt.Errorf("cluster: nkey %s: %w", c.NKey, err)
		}
		opts = append(opts, o)
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.CA != "" {
		opts = append(opts, nats.RootCAs(c.CA))
	}
	if c.Cert != "" {
		opts = append(opts, nats.ClientCert(c.Cert, c.Key))
	}
	return opts, nil
}

func (n *Node) up(nc *nats.Conn) {
	n.mu.Lock()
	if !n.st.Connected {
		close(n.connected)
	}
	n.st.Connected, n.st.Server, n.st.Since = true, nc.ConnectedUrlRedacted(), n.now()
	n.session++
	n.mu.Unlock()
	n.checkSoon() // the stream may have changed while away
	n.log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("connected to the NATS server")
}

// waitConnected waits for the connection to be up and returns the number
// of its session; false when ctx ended first.
func (n *Node) waitConnected(ctx context.Context) (int, bool) {
	n.mu.Lock()
	up := n.connected
	n.mu.Unlock()
	select {
	case <-ctx.Done():
		return 0, false
	case <-up:
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.session, true
}

// waitReady waits until the node may publish: connected, the stream
// checked. False when ctx ended first.
func (n *Node) waitReady(ctx context.Context) bool {
	n.mu.Lock()
	ready := n.ready
	n.mu.Unlock()
	select {
	case <-ctx.Done():
		return false
	case <-ready:
		return true
	}
}

// unready stops the publisher until the stream is checked again. n.mu is
// held.
func (n *Node) unready() {
	if n.usable {
		n.ready = make(chan struct{})
		n.usable = false
	}
}

// streamFine says the stream is there and as expected.
func (n *Node) streamFine() {
	n.mu.Lock()
	was := n.st.StreamError
	n.st.StreamError = ""
	if !n.usable && n.st.Connected {
		close(n.ready)
		n.usable = true
	}
	n.mu.Unlock()
	if was != "" {
		n.log.Info().Str("stream", n.cfg.Stream).Msg("the cluster's stream is usable again")
	}
}

// streamProblem says the stream cannot be used: at error level, when the
// problem changes and every 5 minutes while it lasts.
func (n *Node) streamProblem(err error) {
	now := n.now()
	n.mu.Lock()
	same := n.st.StreamError == err.Error()
	n.st.StreamError = err.Error()
	n.unready()
	logIt := !same || now.Sub(n.streamLog) >= 5*time.Minute
	if logIt {
		n.streamLog = now
	}
	n.mu.Unlock()
	n.fail(err)
	if logIt {
		n.log.Error().Err(err).Str("stream", n.cfg.Stream).Msg("cluster stream not used: bans are neither shared nor received until it is fixed; local bans go on")
	}
}

// skewWarn is the clock skew, between a node and the server, that is
// shown and logged: unbans compare times across nodes, and bans more
// than 5 minutes in the future are refused.
const skewWarn = 30 * time.Second

// clock records this node's clock minus the server's.
func (n *Node) clock(skew time.Duration) {
	n.count(func(st *Stats) { st.ClockSkew, st.ClockChecked = skew, n.now() })
	if skew.Abs() > skewWarn && n.warnSkew("") {
		n.log.Warn().Dur("skew", skew).Msg("this node's clock differs from the NATS server's: fix its time (NTP); other nodes may refuse its bans or keep them too short")
	}
}

// peerClock records a peer's clock minus the server's, as its message
// says (the time it sent it, against the time the server stored it).
func (n *Node) peerClock(node string, skew time.Duration) {
	n.mu.Lock()
	if _, ok := n.peerSkews[node]; !ok && len(n.peerSkews) >= 10000 {
		clear(n.peerSkews)
	}
	n.peerSkews[node] = skew
	n.mu.Unlock()
	if skew.Abs() > skewWarn && n.warnSkew(node) {
		n.log.Warn().Str("node", node).Dur("skew", skew).Msg("another node's clock differs from the NATS server's: its bans may be refused (in the future) or end early here; fix its time (NTP)")
	}
}

// warnSkew reports whether to log a skew of node now: every 10 minutes.
func (n *Node) warnSkew(node string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.now()
	if last, ok := n.skewWarned[node]; ok && now.Sub(last) < 10*time.Minute {
		return false
	}
	if len(n.skewWarned) >= 10000 {
		clear(n.skewWarned)
	}
	n.skewWarned[node] = now
	return true
}
