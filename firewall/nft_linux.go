//go:build linux

package firewall

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"github.com/rs/zerolog"
)

// NFT is the nftables Backend. It keeps the bans in sipguard's own table,
// as set elements with per-element timeouts, so the kernel lifts each ban
// itself and bans hold while the daemon is stopped.
//
// # The nftables contract
//
// NFT owns one table, `inet <Table>` ("inet sipguard" by default), and
// creates in it:
//
//   - set ban4 { type ipv4_addr; flags timeout; }: banned IPv4 addresses;
//   - set ban6 { type ipv6_addr; flags timeout; }: banned IPv6 addresses;
//   - set net4 { type ipv4_addr; flags interval,timeout; }: banned IPv4
//     networks (any prefix shorter than /32);
//   - set net6 { type ipv6_addr; flags interval,timeout; }: banned IPv6
//     networks (any prefix shorter than /128, such as the engine's /64
//     bans);
//   - set allow4 { type ipv4_addr; flags interval; } and set allow6
//     { type ipv6_addr; flags interval; }: the allowlist (NFTOptions.Allow,
//     then SetAllow), overlapping and adjacent entries merged into ranges
//     (interval sets refuse overlaps); no timeouts;
//   - with Ports set, set tcp_ports and/or udp_ports { type inet_service; }
//     holding the destination ports to protect;
//   - one base chain per hook, named like the hook ("input", "forward"):
//     type filter, priority -10 (nft prints "filter - 10"), policy accept.
//   - with Wire, the wire sensor's chains wire_output and/or wire_forward:
//     log rules only, no verdict (see nft_wire_linux.go).
//
// Each chain holds the allowlist's accepts first, then one drop per ban
// set, each rule tagged with the comment "sipguard <set>":
//
//	meta nfproto ipv4 ip saddr @allow4 counter accept comment "sipguard allow4"
//	meta nfproto ipv6 ip6 saddr @allow6 counter accept comment "sipguard allow6"
//	meta nfproto ipv4 ip saddr @ban4 counter drop comment "sipguard ban4"
//	meta nfproto ipv6 ip6 saddr @ban6 counter drop comment "sipguard ban6"
//	meta nfproto ipv4 ip saddr @net4 counter drop comment "sipguard net4"
//	meta nfproto ipv6 ip6 saddr @net6 counter drop comment "sipguard net6"
//
// With Ports, one drop per ban set and protocol ("sipguard <set>
// <proto>"), e.g. for 5060/udp, after the same two accepts:
//
//	meta nfproto ipv4 meta l4proto udp udp dport @udp_ports ip saddr @ban4 counter drop
//
// Each other ports profile (NFTOptions.Profiles: a rule's own ports) has
// the same ban sets and port sets, their names ending in "_r" and the
// FNV-32a hash of the profile's PortsKey ("ban4_rf5b78040",
// "tcp_ports_rf5b78040"), and its drops after the default's, still after
// the two accepts:
//
//	meta nfproto ipv4 meta l4proto tcp tcp dport @tcp_ports_rf5b78040 ip saddr @ban4_rf5b78040 counter drop comment "sipguard ban4_rf5b78040 tcp"
//
// The default profile keeps the names above, so a table made before
// profiles existed is the same. Ban and port sets of a profile no longer
// asked for are deleted with their rules at the next set-up.
//
// With a Policy (strict, responsive) the chains end with the policy of
// the SIP ports, after the drops: see nft_policy_linux.go for its sets
// (sip_tcp, sip_udp, learn4, learn6, meter4, meter6) and rules.
//
// So no ban, however it was made, drops an allowlisted source. The accept
// ends only sipguard's chain: other tables still filter the packet.
// nft lists the rules without the implicit `meta nfproto`. In Ports mode,
// non-first IP fragments carry no transport header and are not dropped.
//
// Every element carries its own timeout; the kernel removes it when it
// expires. Timeouts are rounded up to the millisecond (a zero timeout would
// make a ban permanent) and capped at MaxTimeout. A network element is a
// start element with the timeout plus an interval end element (the first
// address after the network), omitted for a network that reaches the top
// of the address space (such as 224.0.0.0/3).
//
// A drop in any base chain is final, so an accept in firewalld's or ufw's
// tables does not undo sipguard's drop; at priority -10 sipguard's chains
// see packets before theirs (filter, 0). NFT never touches other tables.
//
// Creating the table is idempotent: NewNFT adds what is missing, rewrites
// the rules of a chain only when they differ, recreates a set or chain only
// when its type or flags differ, and leaves the elements of existing sets
// alone. Close leaves the table and its bans in place; the next NFT adopts
// them with Sync.
//
// # Memory and writes
//
// The truth is the in-memory map prefix → expiry, one per profile; the
// kernel is read back
// only to verify. Writes go through one lasting netlink socket in one
// transaction per call, with at most 1,000 elements per netlink message
// (v0.3.0 silently drops elements beyond 2,340 IPv4 / 1,638 IPv6 per
// message) and a send buffer raised to 32 MiB (64 MiB in the kernel) with
// SO_SNDBUFFORCE, so that a Sync of more than a million elements is one
// atomic transaction. Re-banning a present prefix sends add, delete, add in
// one transaction, which refreshes the timeout on every kernel (a plain
// re-add does not before 6.12); an unban sends add, delete, so that neither
// ever deletes an element the kernel may have expired already, which would
// abort the transaction.
//
// A network ban overlapping another network ban of the same profile is
// refused with an *OverlapError: interval sets cannot hold overlapping
// ranges (profiles have their own sets). A single
// address inside a banned network is fine (it goes to ban4 or ban6).
type NFT struct {
	log   zerolog.Logger
	now   func() time.Time
	table *nftables.Table
	hooks []string

	// profiles are the ports profiles, the default first; byKey finds
	// one by its key (the default by "" and by its PortsKey), setIndex
	// by the name of one of its ban sets. Fixed at NewNFT; their maps of
	// bans are guarded by mu.
	profiles  []*profile
	byKey     map[string]*profile
	setIndex  map[string]setRef
	allowSets [2]*nftables.Set // allow4, allow6
	wire      *Wire            // the wire sensor's log rules; nil: none (nft_wire_linux.go)
	pol       policyState      // the policy of the SIP ports (mu)

	nsFile   *os.File // the namespace, kept open for the sockets' life
	nsFD     int
	timeout  time.Duration // of each request (NFTOptions.RequestTimeout)
	sockHook func(fd int, role string) error
	done     chan struct{} // closed by Close
	once     sync.Once

	// mu serialises every use of conn (its batch is shared, and a read
	// interleaved with a Flush would mix replies) and guards what follows.
	mu        sync.Mutex
	conn      *nftables.Conn
	sock      *netlink.Conn            // conn's socket: its deadlines (see talk)
	txMax     int                      // largest transaction to send, in bytes
	allow     [2][]nftables.SetElement // the elements of allowSets, sorted
	synced    bool                     // Sync has run: memory describes the kernel's sets
	lastSweep time.Time
	restored  int
	lastCheck time.Time
	lastErr   string
	closed    bool
	// lastLoad and lastVerify time the last Sync.
	lastLoad, lastVerify time.Duration

	dump *dumper // element dumps, on their own socket (dumper.mu)
	// ourPort is the netlink port id of conn, stamped on the notifications
	// of our transactions; it changes when conn is replaced.
	ourPort atomic.Uint32

	monMu       sync.Mutex
	mon         *monitor
	checkFull   bool
	checkSignal chan struct{}
}

var _ Backend = (*NFT)(nil)

type setKind int

const (
	kindBan4 setKind = iota
	kindBan6
	kindNet4
	kindNet6
)

var setNames = [4]string{"ban4", "ban6", "net4", "net6"}

// allowSetNames are the allowlist's interval sets, IPv4 then IPv6.
var allowSetNames = [2]string{"allow4", "allow6"}

func kindOf(p netip.Prefix) setKind {
	k := kindBan4
	if p.Addr().Is6() {
		k = kindBan6
	}
	if !isHost(p) {
		k += 2
	}
	return k
}

const (
	chainPriority = -10
	// maxElemsPerMsg bounds the elements of one SetAddElements or
	// SetDeleteElements message, well under the uint16 attribute length
	// that v0.3.0 overflows silently.
	maxElemsPerMsg = 1000
	// elemBytes and msgBytes over-estimate the size of an element and of
	// a message's overhead, to keep a transaction under the send buffer.
	elemBytes = 64
	msgBytes  = 600
	// sendBufferSize is the send buffer asked for; the kernel doubles it.
	sendBufferSize = 32 << 20
	// quietElems: a transaction with more element operations than this
	// is sent with the monitor unsubscribed (see monitor.join).
	quietElems = 2000
	// restoreMargin: bans with less time left are not restored.
	restoreMargin = time.Second
	// sweepGrace: expired bans stay in memory this long, so that a new
	// ban of the same prefix still refreshes any kernel leftover.
	sweepGrace = 10 * time.Second
)

// Reconcile's cadence (variables for the tests).
var (
	checkInterval  = 2 * time.Second
	verifyInterval = 10 * time.Second
)

// NewNFT connects to nftables and creates sipguard's table, sets and
// chains where they are missing (see NFT).
func NewNFT(opts NFTOptions) (*NFT, error) {
	n := &NFT{
		now:         opts.Now,
		table:       &nftables.Table{Family: nftables.TableFamilyINet, Name: opts.Table},
		done:        make(chan struct{}),
		checkSignal: make(chan struct{}, 1),
		timeout:     cmp.Or(opts.RequestTimeout, DefaultRequestTimeout),
		sockHook:    opts.sockHook,
	}
	if n.now == nil {
		n.now = time.Now
	}
	if n.table.Name == "" {
		n.table.Name = "sipguard"
	}
	hooks := opts.Hooks
	if len(hooks) == 0 {
		hooks = []string{"input"}
	}
	if opts.Policy.Early {
		// Prerouting sees what input and forward would, before conntrack.
		hooks = []string{"prerouting"}
	}
	for _, h := range hooks {
		if hookNums[h] == nil {
			return nil, fmt.Errorf("hook %q: want input or forward", h)
		}
		if !slices.Contains(n.hooks, h) {
			n.hooks = append(n.hooks, h)
		}
	}
	// Set IDs only need to be unique within a transaction; fixing them
	// keeps v0.3.0 from touching its unguarded global counter.
	if err := n.setupProfiles(opts.Ports, opts.Profiles); err != nil {
		return nil, err
	}
	if opts.Wire != nil {
		if err := opts.Wire.check(); err != nil {
			return nil, err
		}
		w := *opts.Wire
		n.wire = &w
	}
	if err := n.pol.setPolicy(n.table, opts.Policy); err != nil {
		return nil, err
	}
	n.log = opts.Logger.With().Str("backend", "nftables").Str("table", "inet "+n.table.Name).Logger()

	var err error
	for i, name := range allowSetNames {
		n.allowSets[i] = &nftables.Set{Table: n.table, Name: name, ID: uint32(7 + i), KeyType: nftables.TypeIPAddr, Interval: true}
	}
	n.allowSets[1].KeyType = nftables.TypeIP6Addr
	if n.allow, err = allowElements(opts.Allow); err != nil {
		return nil, err
	}

	if opts.NetNS != "" {
		f, err := os.Open(opts.NetNS)
		if err != nil {
			return nil, fmt.Errorf("open network namespace: %w", err)
		}
		n.nsFile, n.nsFD = f, int(f.Fd())
	}
	if err := n.connect(); err != nil {
		n.closeFiles()
		return nil, err
	}
	n.mu.Lock()
	res, err := n.ensureLocked(false)
	// Ban sets created now are empty, as memory is: a new ban needs no
	// refresh. Otherwise, until Sync, every ban refreshes (add, delete,
	// add) whatever the previous run left.
	n.synced = res.fresh
	n.mu.Unlock()
	if err != nil {
		n.closeFiles()
		return nil, missingHint(err)
	}
	if len(res.fixes) > 0 {
		n.log.Info().Str("changes", strings.Join(res.fixes, ", ")).Msg("set up nftables table")
	}
	return n, nil
}

func (n *NFT) connect() error {
	if err := n.dial(); err != nil {
		return err
	}
	if n.txMax < sendBufferSize {
		n.log.Warn().Int("bans_per_transaction", n.txMax/elemBytes).
			Msg("netlink send buffer not raised (SO_SNDBUFFORCE needs CAP_NET_ADMIN): a Sync beyond that many bans is not atomic")
	}
	var err error
	n.dump, err = newDumper(n.nsFD, n.timeout, n.sockHook)
	if err != nil {
		n.conn.CloseLasting()
		return fmt.Errorf("connect to nftables: %w", err)
	}
	return nil
}

// dial opens conn, the lasting connection every request but the dumps
// goes through.
func (n *NFT) dial() error {
	var sock *netlink.Conn
	var txMax int
	var port uint32
	setup := func(c *netlink.Conn) error {
		// As root SO_SNDBUFFORCE bypasses net.core.wmem_max; the receive
		// buffer holds one ack per message of a large transaction.
		_ = setBuffer(c, true, sendBufferSize)
		_ = setBuffer(c, false, 8<<20)
		sb, err := sendBuffer(c)
		if err != nil {
			return fmt.Errorf("read send buffer: %w", err)
		}
		sock, txMax = c, sb-64<<10
		port, err = portID(c)
		return err
	}
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(setup)}
	if n.nsFile != nil {
		opts = append(opts, nftables.WithNetNSFd(n.nsFD))
	}
	if n.sockHook != nil {
		opts = append(opts, nftables.WithSockOptions(func(c *netlink.Conn) error { return hookSocket(n.sockHook, c, "requests") }))
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("connect to nftables: %w", err)
	}
	n.conn, n.sock, n.txMax = conn, sock, max(txMax, 1<<16)
	n.ourPort.Store(port)
	return nil
}

func (n *NFT) closeFiles() {
	if n.conn != nil {
		n.conn.CloseLasting()
	}
	if n.dump != nil {
		n.dump.close()
	}
	if n.nsFile != nil {
		n.nsFile.Close()
	}
}

// lock takes n.mu for a call that changes the bans. It returns ctx's
// error, or ErrClosed after Close, without the lock.
func (n *NFT) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// Close closes the netlink sockets and stops Reconcile. The table and its
// bans stay in the kernel.
func (n *NFT) Close() error {
	n.once.Do(func() { close(n.done) })
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	n.closeFiles()
	return nil
}

// State describes the backend; the drop counters are read from the rules.
func (n *NFT) State(context.Context) State {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.now()
	st := State{
		Backend:   "nftables",
		Table:     "inet " + n.table.Name,
		Hooks:     slices.Clone(n.hooks),
		Restored:  n.restored,
		LastCheck: n.lastCheck,
		LastError: n.lastErr,
	}
	for _, pr := range n.profiles {
		for _, m := range pr.maps() {
			for _, exp := range m {
				if exp.After(now) {
					st.Bans++
				}
			}
		}
	}
	if n.closed {
		st.LastError = ErrClosed.Error()
		return st
	}
	if copied, err := n.wireCopied(); err != nil {
		st.LastError = err.Error()
	} else {
		st.WireCopied = copied
	}
	for _, h := range n.hooks {
		var rules []*nftables.Rule
		err := n.talk(func(c *nftables.Conn) (err error) {
			rules, err = c.GetRules(n.table, &nftables.Chain{Name: h, Table: n.table})
			return err
		})
		if err != nil {
			st.LastError = fmt.Sprintf("read counters of chain %s: %v", h, err)
			continue
		}
		for _, r := range rules {
			if !isOurRule(r) {
				continue
			}
			allow, policy, policyDrop := isAllowRule(r), isPolicyRule(r), isPolicyDrop(r)
			for _, e := range r.Exprs {
				c, ok := e.(*expr.Counter)
				switch {
				case !ok:
				case allow:
					st.Allowed += c.Packets
				case policyDrop:
					st.PolicyDropped += c.Packets
				case policy:
				default:
					st.Packets += c.Packets
					st.Bytes += c.Bytes
				}
			}
		}
	}
	return st
}
