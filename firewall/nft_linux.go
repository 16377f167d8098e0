//go:build linux

package firewall

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
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
//   - with Ports set, set tcp_ports and/or udp_ports { type inet_service; }
//     holding the destination ports to protect;
//   - one base chain per hook, named like the hook ("input", "forward"):
//     type filter, priority -10 (nft prints "filter - 10"), policy accept.
//
// Each chain holds one rule per set, tagged with the comment
// "sipguard <set>":
//
//	meta nfproto ipv4 ip saddr @ban4 counter drop comment "sipguard ban4"
//	meta nfproto ipv6 ip6 saddr @ban6 counter drop comment "sipguard ban6"
//	meta nfproto ipv4 ip saddr @net4 counter drop comment "sipguard net4"
//	meta nfproto ipv6 ip6 saddr @net6 counter drop comment "sipguard net6"
//
// With Ports, one rule per set and protocol ("sipguard <set> <proto>"),
// e.g. for 5060/udp:
//
//	meta nfproto ipv4 meta l4proto udp udp dport @udp_ports ip saddr @ban4 counter drop
//
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
// The truth is the in-memory map prefix → expiry; the kernel is read back
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
// A network ban overlapping another network ban is refused with an
// *OverlapError: interval sets cannot hold overlapping ranges. A single
// address inside a banned network is fine (it goes to ban4 or ban6).
type NFT struct {
	log   zerolog.Logger
	now   func() time.Time
	table *nftables.Table
	hooks []string
	ports map[string][]uint16 // protocol → sorted ports

	sets     [4]*nftables.Set         // indexed by setKind
	portSets map[string]*nftables.Set // protocol → set

	nsFile *os.File // the namespace, kept open for the sockets' life
	nsFD   int
	done   chan struct{} // closed by Close
	once   sync.Once

	// mu serialises every use of conn (its batch is shared, and a read
	// interleaved with a Flush would mix replies) and guards what follows.
	mu        sync.Mutex
	conn      *nftables.Conn
	ourPort   uint32 // netlink port id of conn, stamped on our notifications
	txMax     int    // largest transaction to send, in bytes
	bans      map[netip.Prefix]time.Time
	nets      map[netip.Prefix]time.Time
	synced    bool // Sync has run: memory describes the kernel's sets
	lastSweep time.Time
	restored  int
	lastCheck time.Time
	lastErr   string
	closed    bool
	// lastLoad and lastVerify time the last Sync.
	lastLoad, lastVerify time.Duration

	dump *dumper // element dumps, on their own socket (dumper.mu)

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

var banSetNames = map[string]setKind{"ban4": kindBan4, "ban6": kindBan6, "net4": kindNet4, "net6": kindNet6}

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

var hookNums = map[string]*nftables.ChainHook{
	"input":   nftables.ChainHookInput,
	"forward": nftables.ChainHookForward,
}

// NewNFT connects to nftables and creates sipguard's table, sets and
// chains where they are missing (see NFT).
func NewNFT(opts NFTOptions) (*NFT, error) {
	n := &NFT{
		now:         opts.Now,
		table:       &nftables.Table{Family: nftables.TableFamilyINet, Name: opts.Table},
		ports:       map[string][]uint16{},
		portSets:    map[string]*nftables.Set{},
		bans:        map[netip.Prefix]time.Time{},
		nets:        map[netip.Prefix]time.Time{},
		done:        make(chan struct{}),
		checkSignal: make(chan struct{}, 1),
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
	for _, h := range hooks {
		if hookNums[h] == nil {
			return nil, fmt.Errorf("hook %q: want input or forward", h)
		}
		if !slices.Contains(n.hooks, h) {
			n.hooks = append(n.hooks, h)
		}
	}
	for _, p := range opts.Ports {
		if (p.Proto != "tcp" && p.Proto != "udp") || p.Port == 0 {
			return nil, fmt.Errorf("port %s: want 1-65535/tcp or udp", p)
		}
		if !slices.Contains(n.ports[p.Proto], p.Port) {
			n.ports[p.Proto] = append(n.ports[p.Proto], p.Port)
		}
	}
	for _, ps := range n.ports {
		slices.Sort(ps)
	}
	n.log = opts.Logger.With().Str("backend", "nftables").Str("table", "inet "+n.table.Name).Logger()

	// Set IDs only need to be unique within a transaction; fixing them
	// keeps v0.3.0 from touching its unguarded global counter.
	for k, name := range setNames {
		n.sets[k] = &nftables.Set{
			Table: n.table, Name: name, ID: uint32(k + 1), HasTimeout: true,
			KeyType: nftables.TypeIPAddr, Interval: k >= int(kindNet4),
		}
		if k == int(kindBan6) || k == int(kindNet6) {
			n.sets[k].KeyType = nftables.TypeIP6Addr
		}
	}
	for i, proto := range []string{"tcp", "udp"} {
		if len(n.ports[proto]) > 0 {
			n.portSets[proto] = &nftables.Set{Table: n.table, Name: proto + "_ports", ID: uint32(5 + i), KeyType: nftables.TypeInetService}
		}
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
		return nil, err
	}
	if len(res.fixes) > 0 {
		n.log.Info().Str("changes", strings.Join(res.fixes, ", ")).Msg("set up nftables table")
	}
	return n, nil
}

func (n *NFT) connect() error {
	setup := func(c *netlink.Conn) error {
		// As root SO_SNDBUFFORCE bypasses net.core.wmem_max; the receive
		// buffer holds one ack per message of a large transaction.
		_ = setBuffer(c, true, sendBufferSize)
		_ = setBuffer(c, false, 8<<20)
		sb, err := sendBuffer(c)
		if err != nil {
			return fmt.Errorf("read send buffer: %w", err)
		}
		n.txMax = sb - 64<<10
		n.ourPort, err = portID(c)
		return err
	}
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(setup)}
	if n.nsFile != nil {
		opts = append(opts, nftables.WithNetNSFd(n.nsFD))
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("connect to nftables: %w", err)
	}
	if n.txMax < 1<<16 {
		n.txMax = 1 << 16
	}
	if n.txMax < sendBufferSize {
		n.log.Warn().Int("bans_per_transaction", n.txMax/elemBytes).
			Msg("netlink send buffer not raised (SO_SNDBUFFORCE needs CAP_NET_ADMIN): a Sync beyond that many bans is not atomic")
	}
	n.conn = conn
	n.dump, err = newDumper(n.nsFD)
	if err != nil {
		conn.CloseLasting()
		return fmt.Errorf("connect to nftables: %w", err)
	}
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

// Ban bans each prefix for its timeout, in one transaction.
func (n *NFT) Ban(ctx context.Context, bans ...Ban) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	items := make([]banItem, 0, len(bans))
	index := make(map[netip.Prefix]int, len(bans))
	for _, b := range bans {
		p, err := Normalize(b.Prefix)
		if err != nil {
			return err
		}
		if b.Timeout <= 0 {
			return fmt.Errorf("%w: %s: timeout %v is not positive", ErrInvalidBan, p, b.Timeout)
		}
		if i, ok := index[p]; ok {
			items[i].timeout = b.Timeout // the last one wins
			continue
		}
		index[p] = len(items)
		items = append(items, banItem{p, b.Timeout})
	}
	if len(items) == 0 {
		return nil
	}

	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	now := n.now()
	n.sweepLocked(now, false)
	var newNets []netip.Prefix
	for _, it := range items {
		if isHost(it.p) {
			continue
		}
		if err := checkOverlap(n.nets, it.p, now); err != nil {
			return err
		}
		for _, q := range newNets {
			if q.Overlaps(it.p) {
				return &OverlapError{Prefix: it.p, With: q}
			}
		}
		newNets = append(newNets, it.p)
	}

	err := n.commitBans(items, now)
	if err != nil && errors.Is(err, unix.EEXIST) {
		// A network that expired in memory can live on in the kernel for
		// as long as the transaction that set it took (the kernel counts
		// from its commit): wait until it is gone and try again.
		if wait := n.expiredOverlapWait(newNets, now); wait > 0 {
			time.Sleep(wait)
			now = n.now()
			err = n.commitBans(items, now)
		}
	}
	if err != nil {
		return fmt.Errorf("commit %d bans: %w", len(items), err)
	}
	for _, it := range items {
		n.mapFor(it.p)[it.p] = now.Add(kernelTimeout(it.timeout))
	}
	n.log.Debug().Int("bans", len(items)).Msg("banned")
	return nil
}

// banItem is a normalised ban.
type banItem struct {
	p       netip.Prefix
	timeout time.Duration
}

// commitBans sends one transaction adding each ban; a ban of a prefix
// that may be in the kernel already is sent as add, delete, add, which
// sets the new timeout on every kernel.
func (n *NFT) commitBans(items []banItem, now time.Time) error {
	var pre, del, add [4][]nftables.SetElement
	ops := 0
	for _, it := range items {
		k, t := kindOf(it.p), kernelTimeout(it.timeout)
		els := elementsOf(it.p, t)
		if _, known := n.lookupLocked(it.p); known || !n.synced {
			pre[k] = append(pre[k], els...)
			del[k] = append(del[k], withoutTimeout(els)...)
			ops += 2 * len(els)
		}
		add[k] = append(add[k], els...)
		ops += len(els)
	}
	tx := n.newTxn(ops)
	for _, group := range []struct {
		del bool
		els [4][]nftables.SetElement
	}{{false, pre}, {true, del}, {false, add}} {
		for k := range group.els {
			var err error
			if group.del {
				err = tx.del(n.sets[k], group.els[k])
			} else {
				err = tx.add(n.sets[k], group.els[k])
			}
			if err != nil {
				return err
			}
		}
	}
	return tx.commit()
}

// expiredOverlapWait returns how long to wait for the networks that
// expired in memory less than 2 s ago and overlap nets to be gone from
// the kernel, and forgets them.
func (n *NFT) expiredOverlapWait(nets []netip.Prefix, now time.Time) time.Duration {
	var wait time.Duration
	for q, exp := range n.nets {
		if exp.After(now) || now.Sub(exp) >= 2*time.Second || !slices.ContainsFunc(nets, q.Overlaps) {
			continue
		}
		wait = max(wait, exp.Add(2*time.Second).Sub(now))
		delete(n.nets, q)
	}
	return wait
}

// Unban lifts bans; prefixes not banned are ignored.
func (n *NFT) Unban(ctx context.Context, prefixes ...netip.Prefix) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	var add, del [4][]nftables.SetElement
	var gone []netip.Prefix
	seen := make(map[netip.Prefix]bool, len(prefixes))
	ops := 0
	for _, p := range prefixes {
		p, err := Normalize(p)
		if err != nil {
			return err
		}
		if _, ok := n.lookupLocked(p); !ok || seen[p] {
			continue
		}
		seen[p] = true
		// add+delete: the add makes sure the delete finds the element,
		// even if the kernel has just expired it.
		els := elementsOf(p, time.Second)
		add[kindOf(p)] = append(add[kindOf(p)], els...)
		del[kindOf(p)] = append(del[kindOf(p)], withoutTimeout(els)...)
		gone = append(gone, p)
		ops += 2 * len(els)
	}
	if len(gone) == 0 {
		return nil
	}
	tx := n.newTxn(ops)
	for k := range add {
		if err := tx.add(n.sets[k], add[k]); err != nil {
			return err
		}
	}
	for k := range del {
		if err := tx.del(n.sets[k], del[k]); err != nil {
			return err
		}
	}
	if err := tx.commit(); err != nil {
		return fmt.Errorf("commit %d unbans: %w", len(gone), err)
	}
	for _, p := range gone {
		delete(n.mapFor(p), p)
	}
	n.log.Debug().Int("unbans", len(gone)).Msg("unbanned")
	return nil
}

// List returns the bans in force.
func (n *NFT) List(context.Context) ([]Entry, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.now()
	return append(entries(n.bans, now), entries(n.nets, now)...), nil
}

// Sync makes the kernel hold exactly the unexpired entries, with their
// remaining time, in one transaction (flush the four sets and add every
// element), so that there is no moment without protection; then it reads
// the sets back and returns an error if the kernel holds other elements
// than those loaded. Overlapping networks keep the wider one; the others
// are skipped and reported in the error (ErrOverlap), after the rest is
// loaded. Sync holds the backend's lock throughout: for 100,000 bans,
// about 0.4 s of loading and 0.6 to 1.3 s of verification on a 2-core VM.
func (n *NFT) Sync(ctx context.Context, es []Entry) error { return n.load(ctx, es, true) }

func (n *NFT) load(ctx context.Context, es []Entry, verify bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	now := n.now()
	bans := make(map[netip.Prefix]time.Time, len(es))
	nets := map[netip.Prefix]time.Time{}
	for _, e := range es {
		p, err := Normalize(e.Prefix)
		if err != nil {
			return err
		}
		if e.Expires.Sub(now) < time.Millisecond {
			continue
		}
		exp := e.Expires
		if exp.Sub(now) > MaxTimeout {
			exp = now.Add(MaxTimeout)
		}
		m := bans
		if !isHost(p) {
			m = nets
		}
		if old, ok := m[p]; !ok || exp.After(old) {
			m[p] = exp
		}
	}
	var errs []error
	if len(nets) > 1 {
		sorted := make([]netip.Prefix, 0, len(nets))
		for p := range nets {
			sorted = append(sorted, p)
		}
		slices.SortFunc(sorted, func(a, b netip.Prefix) int {
			return cmp.Or(cmp.Compare(a.Bits(), b.Bits()), a.Addr().Compare(b.Addr()))
		})
		var kept []netip.Prefix
		for _, p := range sorted {
			if i := slices.IndexFunc(kept, p.Overlaps); i >= 0 {
				errs = append(errs, &OverlapError{Prefix: p, With: kept[i]})
				delete(nets, p)
				continue
			}
			kept = append(kept, p)
		}
	}

	if _, err := n.ensureLocked(false); err != nil {
		return err
	}
	start := time.Now()
	var els [4][]nftables.SetElement
	ops := 0
	for _, m := range []map[netip.Prefix]time.Time{bans, nets} {
		for p, exp := range m {
			e := elementsOf(p, kernelTimeout(exp.Sub(now)))
			els[kindOf(p)] = append(els[kindOf(p)], e...)
			ops += len(e)
		}
	}
	tx := n.newTxn(ops)
	tx.splittable = true
	for _, s := range n.sets {
		n.conn.FlushSet(s)
	}
	for k := range els {
		if err := tx.add(n.sets[k], els[k]); err != nil {
			return err
		}
	}
	if err := tx.commit(); err != nil {
		return fmt.Errorf("load %d bans: %w", len(bans)+len(nets), err)
	}
	if tx.parts > 1 {
		n.log.Warn().Int("transactions", tx.parts).Msg("bans loaded in several transactions: the send buffer is too small for one")
	}
	n.bans, n.nets, n.synced = bans, nets, true
	load := time.Since(start)
	if !verify {
		n.lastLoad = load
		n.log.Info().Int("bans", len(bans)+len(nets)).Float64("load_seconds", load.Seconds()).Msg("loaded bans")
		return errors.Join(errs...)
	}

	start = time.Now()
	verr := n.verifyAllLocked()
	n.lastLoad, n.lastVerify = load, time.Since(start)
	n.log.Info().Int("bans", len(bans)+len(nets)).Float64("load_seconds", load.Seconds()).
		Float64("verify_seconds", n.lastVerify.Seconds()).Msg("loaded bans")
	return errors.Join(append([]error{verr}, errs...)...)
}

// Load is Sync without its read-back: the bans are in force when it
// returns (the kernel committed them in one transaction); Verify then
// checks the kernel without holding up bans meanwhile.
func (n *NFT) Load(ctx context.Context, es []Entry) error { return n.load(ctx, es, false) }

// Verify reads the ban sets back, restores any ban missing from the
// kernel, and reports what it did. Bans go on while it reads.
func (n *NFT) Verify(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	start := time.Now()
	n.mu.Lock()
	before := n.restored
	n.mu.Unlock()
	_, err := n.verifyElements("load")
	n.mu.Lock()
	n.lastVerify = time.Since(start)
	repaired := n.restored != before
	n.mu.Unlock()
	if err != nil {
		return err
	}
	if !repaired {
		n.log.Info().Float64("verify_seconds", time.Since(start).Seconds()).Msg("bans read back from the kernel: all present")
	}
	return nil
}

// verifyAllLocked checks that the kernel's sets hold exactly the bans in
// memory (bans expiring during the check may be missing). A set dump runs
// in many parts, each restarting the kernel's walk of the set and skipping
// what was already sent: while the kernel grows a set's hash table (in the
// background, for a few hundred milliseconds after a large insert) a dump
// can miss elements. So a set that seems to lack elements is read again,
// up to three times, 100 ms apart.
func (n *NFT) verifyAllLocked() error {
	var errs []error
	for k, s := range n.sets {
		var err error
		for i := range 4 {
			if i > 0 {
				time.Sleep(100 * time.Millisecond)
			}
			if err = n.verifySetLocked(setKind(k)); err == nil {
				break
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("verify %s: %w", s.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (n *NFT) verifySetLocked(k setKind) error {
	got, err := n.dumpStarts(setNames[k])
	if err != nil {
		return err
	}
	now := n.now()
	want, missing := 0, 0
	for _, m := range []map[netip.Prefix]time.Time{n.bans, n.nets} {
		for p, exp := range m {
			if kindOf(p) != k {
				continue
			}
			_, ok := got[p.Addr()]
			delete(got, p.Addr()) // the kernel may outlive memory by a commit
			if !exp.After(now) {
				continue
			}
			want++
			if !ok && exp.Sub(now) > restoreMargin {
				missing++
			}
		}
	}
	if missing > 0 || len(got) > 0 {
		return fmt.Errorf("kernel holds %d unexpected elements and lacks %d of %d", len(got), missing, want)
	}
	return nil
}

// dumpStarts reads a ban set's elements, keyed by address (network start),
// skipping interval ends. An interrupted dump is retried once.
func (n *NFT) dumpStarts(set string) (map[netip.Addr]kelem, error) {
	var els []kelem
	var err error
	for range 2 {
		els, err = n.dump.elements(n.table.Name, set)
		if !errors.Is(err, errDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	out := make(map[netip.Addr]kelem, len(els))
	for _, e := range els {
		if !e.end {
			out[e.addr] = e
		}
	}
	return out, nil
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
	for _, m := range []map[netip.Prefix]time.Time{n.bans, n.nets} {
		for _, exp := range m {
			if exp.After(now) {
				st.Bans++
			}
		}
	}
	if n.closed {
		st.LastError = ErrClosed.Error()
		return st
	}
	for _, h := range n.hooks {
		rules, err := n.conn.GetRules(n.table, &nftables.Chain{Name: h, Table: n.table})
		if err != nil {
			st.LastError = fmt.Sprintf("read counters of chain %s: %v", h, err)
			continue
		}
		for _, r := range rules {
			if !isOurRule(r) {
				continue
			}
			for _, e := range r.Exprs {
				if c, ok := e.(*expr.Counter); ok {
					st.Packets += c.Packets
					st.Bytes += c.Bytes
				}
			}
		}
	}
	return st
}

func (n *NFT) mapFor(p netip.Prefix) map[netip.Prefix]time.Time {
	if isHost(p) {
		return n.bans
	}
	return n.nets
}

// lookupLocked returns p's expiry if p is in memory, expired or not.
func (n *NFT) lookupLocked(p netip.Prefix) (time.Time, bool) {
	exp, ok := n.mapFor(p)[p]
	return exp, ok
}

// sweepLocked forgets bans expired for longer than sweepGrace; unless
// force, at most once a minute.
func (n *NFT) sweepLocked(now time.Time, force bool) {
	if !force && now.Sub(n.lastSweep) < time.Minute {
		return
	}
	n.lastSweep = now
	for _, m := range []map[netip.Prefix]time.Time{n.bans, n.nets} {
		for p, exp := range m {
			if now.Sub(exp) > sweepGrace {
				delete(m, p)
			}
		}
	}
}

// kernelTimeout returns d rounded up to the millisecond (the kernel's
// unit: a sub-millisecond timeout would be sent as none, a permanent ban)
// and capped at MaxTimeout.
func kernelTimeout(d time.Duration) time.Duration {
	if d >= MaxTimeout-time.Millisecond {
		return MaxTimeout
	}
	if d < time.Millisecond {
		return time.Millisecond
	}
	return (d + time.Millisecond - 1) / time.Millisecond * time.Millisecond
}

// elementsOf returns the set elements of p: its address, or for a network
// its start (with the timeout) and end.
func elementsOf(p netip.Prefix, timeout time.Duration) []nftables.SetElement {
	els := []nftables.SetElement{{Key: p.Addr().AsSlice(), Timeout: timeout}}
	if isHost(p) {
		return els
	}
	if end := lastAddr(p).Next(); end.IsValid() {
		els = append(els, nftables.SetElement{Key: end.AsSlice(), IntervalEnd: true})
	}
	return els
}

func withoutTimeout(els []nftables.SetElement) []nftables.SetElement {
	out := make([]nftables.SetElement, len(els))
	for i, e := range els {
		out[i] = nftables.SetElement{Key: e.Key, IntervalEnd: e.IntervalEnd}
	}
	return out
}

// lastAddr returns the last address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// txn queues one transaction on conn, in messages of at most
// maxElemsPerMsg elements.
type txn struct {
	n          *NFT
	ops        int  // element operations announced for the whole call
	bytes      int  // estimated size of what is queued
	queued     int  // messages queued
	splittable bool // may commit early when the send buffer would overflow
	parts      int
}

func (n *NFT) newTxn(ops int) *txn { return &txn{n: n, ops: ops} }

func (t *txn) add(s *nftables.Set, els []nftables.SetElement) error {
	return t.elements(s, els, false)
}

func (t *txn) del(s *nftables.Set, els []nftables.SetElement) error {
	return t.elements(s, els, true)
}

func (t *txn) elements(s *nftables.Set, els []nftables.SetElement, del bool) error {
	for len(els) > 0 {
		k := min(maxElemsPerMsg, len(els))
		if k < len(els) && els[k].IntervalEnd {
			k-- // keep a network's start and end in one message
		}
		size := msgBytes + k*elemBytes
		if t.splittable && t.queued > 0 && t.bytes+size > t.n.txMax {
			if err := t.commit(); err != nil {
				return err
			}
		}
		var err error
		if del {
			err = t.n.conn.SetDeleteElements(s, els[:k])
		} else {
			err = t.n.conn.SetAddElements(s, els[:k])
		}
		if err != nil {
			if del {
				return fmt.Errorf("delete elements from %s: %w", s.Name, err)
			}
			return fmt.Errorf("add elements to %s: %w", s.Name, err)
		}
		t.bytes += size
		t.queued++
		els = els[k:]
	}
	return nil
}

// commit sends what is queued. A large transaction is sent with the
// monitor unsubscribed, and Reconcile is asked to check afterwards for
// changes it may have missed meanwhile.
func (t *txn) commit() error {
	quiet := t.ops > quietElems
	if quiet {
		t.n.setQuiet(true)
	}
	err := t.n.conn.Flush()
	if quiet {
		t.n.setQuiet(false)
	}
	t.parts++
	t.bytes, t.queued = 0, 0
	return err
}

// setQuiet unsubscribes the monitor (on) or subscribes it again and asks
// for a check (off).
func (n *NFT) setQuiet(on bool) {
	n.monMu.Lock()
	defer n.monMu.Unlock()
	if n.mon == nil {
		return
	}
	if err := n.mon.join(!on); err != nil {
		n.log.Warn().Err(err).Msg("toggle nftables monitor")
	}
	if !on {
		n.checkFull = true
		select {
		case n.checkSignal <- struct{}{}:
		default:
		}
	}
}

// kernelState is what inspect read of our table.
type kernelState struct {
	table  bool
	sets   map[string]*nftables.Set
	chains map[string]*nftables.Chain
	rules  map[string][]*nftables.Rule
	ports  map[string][]uint16 // set name → ports
}

func (n *NFT) inspect() (*kernelState, error) {
	st := &kernelState{
		sets:   map[string]*nftables.Set{},
		chains: map[string]*nftables.Chain{},
		rules:  map[string][]*nftables.Rule{},
		ports:  map[string][]uint16{},
	}
	if _, err := n.conn.ListTableOfFamily(n.table.Name, nftables.TableFamilyINet); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return st, nil
		}
		return nil, fmt.Errorf("get table inet %s: %w", n.table.Name, err)
	}
	st.table = true
	sets, err := n.conn.GetSets(n.table)
	if err != nil {
		return nil, fmt.Errorf("get sets: %w", err)
	}
	for _, s := range sets {
		st.sets[s.Name] = s
	}
	chains, err := n.conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("get chains: %w", err)
	}
	for _, c := range chains {
		if c.Table != nil && c.Table.Name == n.table.Name {
			st.chains[c.Name] = c
		}
	}
	for _, h := range n.hooks {
		if c, ok := st.chains[h]; ok {
			rules, err := n.conn.GetRules(n.table, c)
			if err != nil {
				return nil, fmt.Errorf("get rules of chain %s: %w", h, err)
			}
			st.rules[h] = rules
		}
	}
	for _, name := range []string{"tcp_ports", "udp_ports"} {
		s, ok := st.sets[name]
		if !ok {
			continue
		}
		els, err := n.conn.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("get elements of %s: %w", name, err)
		}
		for _, e := range els {
			if len(e.Key) == 2 {
				st.ports[name] = append(st.ports[name], uint16(e.Key[0])<<8|uint16(e.Key[1]))
			}
		}
		slices.Sort(st.ports[name])
	}
	return st, nil
}

// ensured is what ensureLocked did.
type ensured struct {
	fixes    []string // what it created or fixed
	reloaded int      // bans loaded into ban sets it created
	fresh    bool     // it created all four ban sets: they are empty
}

// ensureLocked brings the table, sets, chains and rules to the contract,
// in one transaction, touching only what differs. With reload, the bans
// in memory are loaded into the ban sets it had to create.
func (n *NFT) ensureLocked(reload bool) (ensured, error) {
	st, err := n.inspect()
	if err != nil {
		return ensured{}, err
	}
	var fixes []string
	c := n.conn
	if !st.table {
		c.AddTable(n.table)
		fixes = append(fixes, "table inet "+n.table.Name)
	}

	want := slices.Clone(n.sets[:])
	for _, proto := range []string{"tcp", "udp"} {
		if s := n.portSets[proto]; s != nil {
			want = append(want, s)
		}
	}
	create := map[string]bool{}
	var dropSets []string
	for _, s := range want {
		have, ok := st.sets[s.Name]
		if !ok || !sameSet(have, s) {
			create[s.Name] = true
			if st.table {
				fixes = append(fixes, "set "+s.Name)
			}
		}
		if ok && !sameSet(have, s) {
			dropSets = append(dropSets, s.Name)
		}
	}
	for _, proto := range []string{"tcp", "udp"} {
		if _, ok := st.sets[proto+"_ports"]; ok && n.portSets[proto] == nil {
			dropSets = append(dropSets, proto+"_ports")
			fixes = append(fixes, "delete set "+proto+"_ports")
		}
	}

	specs := n.ruleSpecs()
	var dropChains []string
	addChain, rewrite := map[string]bool{}, map[string]bool{}
	for _, h := range n.hooks {
		have, ok := st.chains[h]
		switch {
		case !ok:
			addChain[h], rewrite[h] = true, true
			if st.table {
				fixes = append(fixes, "chain "+h)
			}
		case !sameHook(have, h):
			dropChains = append(dropChains, h)
			addChain[h], rewrite[h] = true, true
			fixes = append(fixes, "chain "+h)
		case have.Policy == nil || *have.Policy != nftables.ChainPolicyAccept:
			addChain[h] = true // updates the policy
			fixes = append(fixes, "policy of chain "+h)
		}
		if ok && !rewrite[h] && (len(dropSets) > 0 || !sameRules(st.rules[h], specs)) {
			rewrite[h] = true
			fixes = append(fixes, "rules of chain "+h)
		}
	}
	for name := range st.chains {
		if hookNums[name] != nil && !slices.Contains(n.hooks, name) {
			dropChains = append(dropChains, name)
			fixes = append(fixes, "delete chain "+name)
		}
	}
	if len(fixes) == 0 && !n.portsDiffer(st) {
		return ensured{}, nil
	}

	// Order matters: rules go before the sets they use, sets before the
	// rules that use them.
	for _, name := range dropChains {
		ch := &nftables.Chain{Name: name, Table: n.table}
		c.FlushChain(ch)
		c.DelChain(ch)
	}
	for h := range rewrite {
		if _, ok := st.chains[h]; ok && !slices.Contains(dropChains, h) {
			c.FlushChain(&nftables.Chain{Name: h, Table: n.table})
		}
	}
	for _, name := range dropSets {
		c.DelSet(&nftables.Set{Table: n.table, Name: name})
	}
	for _, s := range want {
		if create[s.Name] {
			if err := c.AddSet(s, nil); err != nil {
				return ensured{}, fmt.Errorf("add set %s: %w", s.Name, err)
			}
		}
	}
	for _, h := range n.hooks {
		if addChain[h] {
			c.AddChain(n.chain(h))
		}
	}
	for _, h := range n.hooks {
		if !rewrite[h] {
			continue
		}
		for _, r := range specs {
			c.AddRule(&nftables.Rule{
				Table: n.table, Chain: n.chain(h), Exprs: r.exprs,
				UserData: userdata.AppendString(nil, userdata.TypeComment, r.tag),
			})
		}
	}
	tx := n.newTxn(0)
	for _, proto := range []string{"tcp", "udp"} {
		s := n.portSets[proto]
		if s == nil || (!create[s.Name] && slices.Equal(st.ports[s.Name], n.ports[proto])) {
			continue
		}
		if !create[s.Name] {
			c.FlushSet(s)
			fixes = append(fixes, "ports in set "+s.Name)
		}
		var els []nftables.SetElement
		for _, p := range n.ports[proto] {
			els = append(els, nftables.SetElement{Key: []byte{byte(p >> 8), byte(p)}})
		}
		if err := tx.add(s, els); err != nil {
			return ensured{}, err
		}
	}
	reloaded := 0
	if reload {
		now := n.now()
		var els [4][]nftables.SetElement
		for _, m := range []map[netip.Prefix]time.Time{n.bans, n.nets} {
			for p, exp := range m {
				k := kindOf(p)
				if !create[setNames[k]] || exp.Sub(now) < restoreMargin {
					continue
				}
				e := elementsOf(p, kernelTimeout(exp.Sub(now)))
				els[k] = append(els[k], e...)
				tx.ops += len(e)
				reloaded++
			}
		}
		tx.splittable = true
		for k := range els {
			if err := tx.add(n.sets[k], els[k]); err != nil {
				return ensured{}, err
			}
		}
	}
	if err := tx.commit(); err != nil {
		return ensured{}, fmt.Errorf("set up table inet %s: %w", n.table.Name, err)
	}
	if !st.table {
		fixes = []string{"table inet " + n.table.Name + " with its sets, chains and rules"}
	}
	fresh := true
	for _, name := range setNames {
		fresh = fresh && create[name]
	}
	return ensured{fixes: fixes, reloaded: reloaded, fresh: fresh}, nil
}

func (n *NFT) portsDiffer(st *kernelState) bool {
	for proto, s := range n.portSets {
		if !slices.Equal(st.ports[s.Name], n.ports[proto]) {
			return true
		}
	}
	return false
}

func sameSet(have, want *nftables.Set) bool {
	return have.KeyType.Name == want.KeyType.Name && have.KeyType.Bytes == want.KeyType.Bytes &&
		have.Interval == want.Interval && have.HasTimeout == want.HasTimeout &&
		!have.IsMap && !have.Anonymous && !have.Constant && !have.Concatenation
}

func sameHook(have *nftables.Chain, hook string) bool {
	return have.Type == nftables.ChainTypeFilter &&
		have.Hooknum != nil && *have.Hooknum == *hookNums[hook] &&
		have.Priority != nil && *have.Priority == chainPriority
}

func (n *NFT) chain(hook string) *nftables.Chain {
	accept := nftables.ChainPolicyAccept
	return &nftables.Chain{
		Name: hook, Table: n.table, Type: nftables.ChainTypeFilter,
		Hooknum: hookNums[hook], Priority: nftables.ChainPriorityRef(chainPriority), Policy: &accept,
	}
}

// ruleSpec is a rule of our chains, tagged with a comment.
type ruleSpec struct {
	tag   string
	exprs []expr.Any
}

const rulePrefix = "sipguard "

func isOurRule(r *nftables.Rule) bool {
	tag, ok := userdata.GetString(r.UserData, userdata.TypeComment)
	return ok && strings.HasPrefix(tag, rulePrefix)
}

func sameRules(have []*nftables.Rule, want []ruleSpec) bool {
	if len(have) != len(want) {
		return false
	}
	for i, r := range have {
		tag, _ := userdata.GetString(r.UserData, userdata.TypeComment)
		if tag != want[i].tag || len(r.Exprs) != len(want[i].exprs) {
			return false
		}
	}
	return true
}

func (n *NFT) ruleSpecs() []ruleSpec {
	var out []ruleSpec
	for k, s := range n.sets {
		v6 := k == int(kindBan6) || k == int(kindNet6)
		if len(n.portSets) == 0 {
			out = append(out, ruleSpec{rulePrefix + s.Name, saddrDrop(s, v6, nil)})
			continue
		}
		for _, proto := range []string{"tcp", "udp"} {
			if ps := n.portSets[proto]; ps != nil {
				out = append(out, ruleSpec{rulePrefix + s.Name + " " + proto, saddrDrop(s, v6, ps)})
			}
		}
	}
	return out
}

// saddrDrop returns `meta nfproto ipv4|ipv6 [meta l4proto P P dport
// @ports] ip|ip6 saddr @set counter drop`. The nfproto guard keeps the
// IPv4 offset from being read in an IPv6 packet (inet tables see both).
func saddrDrop(s *nftables.Set, v6 bool, ports *nftables.Set) []expr.Any {
	proto, off, size := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4)
	if v6 {
		proto, off, size = unix.NFPROTO_IPV6, 8, 16
	}
	ex := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
	if ports != nil {
		l4 := byte(unix.IPPROTO_TCP)
		if strings.HasPrefix(ports.Name, "udp") {
			l4 = unix.IPPROTO_UDP
		}
		ex = append(ex,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{l4}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, SetName: ports.Name, SetID: ports.ID},
		)
	}
	return append(ex,
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: size},
		&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	)
}

// Kernel reads the bans the kernel holds now, with the time each has left
// (a ban without a timeout gets MaxTimeout). The daemon adopts them at
// start: a ban made just before a crash is in the kernel even if it had
// not been saved yet, and must not be flushed away by the restore.
func (n *NFT) Kernel(ctx context.Context) ([]Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := n.now()
	var out []Entry
	for k, name := range setNames {
		var els []kelem
		var err error
		for range 2 {
			if els, err = n.dump.elements(n.table.Name, name); !errors.Is(err, errDumpInterrupted) {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("read set %s: %w", name, err)
		}
		left := func(e kelem) time.Time {
			if e.expires <= 0 {
				return now.Add(MaxTimeout)
			}
			return now.Add(e.expires)
		}
		if setKind(k) == kindBan4 || setKind(k) == kindBan6 {
			for _, e := range els {
				if !e.end {
					out = append(out, Entry{Prefix: netip.PrefixFrom(e.addr, e.addr.BitLen()), Expires: left(e)})
				}
			}
			continue
		}
		// Interval sets: a network is a start element and the end element
		// at the first address after it (none for a network reaching the
		// top of the address space).
		slices.SortFunc(els, func(a, b kelem) int { return a.addr.Compare(b.addr) })
		for i, e := range els {
			if e.end {
				continue
			}
			var next netip.Addr
			if i+1 < len(els) && els[i+1].end {
				next = els[i+1].addr
			}
			if p, ok := networkOf(e.addr, next); ok {
				out = append(out, Entry{Prefix: p, Expires: left(e)})
			}
		}
	}
	return out, nil
}

// networkOf returns the prefix covering [start, next), or up to the top of
// the address space when next is not valid.
func networkOf(start, next netip.Addr) (netip.Prefix, bool) {
	for bits := 0; bits <= start.BitLen(); bits++ {
		p := netip.PrefixFrom(start, bits)
		if p.Masked().Addr() != start {
			continue
		}
		after := lastAddr(p).Next()
		if next.IsValid() && after == next || !next.IsValid() && !after.IsValid() {
			return p, true
		}
	}
	return netip.Prefix{}, false
}
