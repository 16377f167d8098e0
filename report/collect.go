// Package report builds a review of logs for an administrator: `sipguard
// report`. A Collector takes the events of a replay (package replay) one
// at a time, feeds them to the engine exactly as `sipguard scan` does, and
// aggregates what the engine decided and what the events say: failures per
// hour by kind, the bans the rules would make, the top attacking addresses,
// networks, accounts and extensions, compromise signals, services attacked,
// and what stayed below every rule's threshold. Its Report is written as
// JSON or as one self-contained HTML page with inline SVG charts.
//
// Memory is bounded by the top-N structures (topN), the number of time
// buckets (maxBuckets) and the lists' lengths, never by the number of
// lines: a top list is exact for every key whose count exceeds the events
// seen divided by its capacity, and says how far off it may be otherwise.
//
// The package does no I/O but writing to the io.Writer it is given.
// Every user name and extension in a Report is attacker-written text.
package report

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/parsers"
)

// Options tune a Collector; zero values take the defaults.
type Options struct {
	// Top is the number of rows of each top list (default 20).
	Top int
	// Capacity is the number of keys each top-N structure holds
	// (default 2000, at least Top).
	Capacity int
	// MaxListed bounds the bans and compromises listed one by one
	// (default 200); the rest are counted.
	MaxListed int
	// Since, when set, skips events before it (counted as skipped).
	Since time.Time
	// Generated is the time the report says it was made.
	Generated time.Time
	// WeakAccounts are the accounts whose password `sipguard audit`
	// finds weak (audit.Report.WeakAccounts): marked among the accounts
	// being guessed, the first to change.
	WeakAccounts map[string]bool
	// Country, when set, returns the ISO code of an address's country
	// ("" when unknown): a [geoip] database's (geoip.DB.Country). The top
	// addresses and networks then say their country.
	Country func(netip.Addr) string
}

// Defaults of Options.
const (
	DefaultTop       = 20
	DefaultCapacity  = 2000
	DefaultMaxListed = 200
	// maxUser bounds the bytes of a user name kept: attacker-written text
	// of any length must not make the report grow.
	maxUser = 64
	// maxBanned bounds the prefixes remembered as banned, to keep them out
	// of the below-threshold list.
	maxBanned = 100_000
)

// kindSlots and serviceSlots size the arrays indexed by parsers.Kind and
// parsers.Service (their failure kinds and services are below these).
const (
	kindSlots    = 16
	serviceSlots = 8
)

// Collector aggregates events and the engine's decisions on them. It is
// not safe for concurrent use.
type Collector struct {
	eng   *engine.Engine
	opts  Options
	rules []engine.Rule

	first, last time.Time
	loc         *time.Location
	timeline    timeline

	failures, successes, skipped  int64
	allowed, special, whileBanned int64
	byKind                        [kindSlots]int64
	byService                     [serviceSlots][kindSlots]int64

	addrs    *topN[netip.Addr, addrInfo]
	nets     *topN[netip.Prefix, netInfo]
	accounts *topN[string, userInfo]
	exts     *topN[string, userInfo]
	unbanned *topN[netip.Prefix, addrInfo]
	banned   map[netip.Prefix]struct{}

	bans            []Ban
	bansByRule      map[string]int64
	compromises     []Compromise
	compromiseCount int64
}

// addrInfo is what is kept per address beyond its count.
type addrInfo struct {
	kinds       parsers.KindSet
	services    uint32 // bit per parsers.Service
	bans        int64
	compromised bool
	allowed     bool
}

// netInfo is what is kept per network: its distinct addresses, exactly for
// an IPv4 /24 (a bitmap of the last byte), up to maxNetAddrs for IPv6.
type netInfo struct {
	v4    [4]uint64
	v6    []netip.Addr
	more  bool // more IPv6 addresses than v6 holds
	kinds parsers.KindSet
	bans  int64
}

const maxNetAddrs = 16

// userInfo is what is kept per account or extension.
type userInfo struct {
	byKind   [kindSlots]int64
	services uint32
}

// NewCollector returns a Collector feeding eng, which must be new.
func NewCollector(eng *engine.Engine, opts Options) *Collector {
	if opts.Top <= 0 {
		opts.Top = DefaultTop
	}
	if opts.Capacity <= 0 {
		opts.Capacity = DefaultCapacity
	}
	opts.Capacity = max(opts.Capacity, opts.Top)
	if opts.MaxListed <= 0 {
		opts.MaxListed = DefaultMaxListed
	}
	return &Collector{
		eng: eng, opts: opts, rules: eng.Rules(),
		timeline:   newTimeline(len(eng.Rules()) + 1),
		addrs:      newTopN[netip.Addr, addrInfo](opts.Capacity),
		nets:       newTopN[netip.Prefix, netInfo](opts.Capacity),
		accounts:   newTopN[string, userInfo](opts.Capacity),
		exts:       newTopN[string, userInfo](opts.Capacity),
		unbanned:   newTopN[netip.Prefix, addrInfo](opts.Capacity),
		banned:     make(map[netip.Prefix]struct{}),
		bansByRule: make(map[string]int64),
	}
}

// Add feeds one event to the engine, as `sipguard scan` does, and counts
// it. Events must come in time order (replay.Replay.Next's).
func (c *Collector) Add(ev *parsers.Event) {
	if !c.opts.Since.IsZero() && ev.Time.Before(c.opts.Since) {
		c.skipped++
		return
	}
	if c.loc == nil {
		c.loc = ev.Time.Location()
	}
	if c.first.IsZero() || ev.Time.Before(c.first) {
		c.first = ev.Time
	}
	if ev.Time.After(c.last) {
		c.last = ev.Time
	}
	if ev.Kind == parsers.AuthSucceeded {
		c.success(ev)
		return
	}
	if !ev.Kind.Failure() {
		return
	}
	before := c.eng.Stats()
	ban, banned := c.eng.Observe(ev)
	after := c.eng.Stats()
	allowed := after.Allowed > before.Allowed
	special := after.Special > before.Special
	whileBanned := after.WhileBanned > before.WhileBanned
	c.allowed += after.Allowed - before.Allowed
	c.special += after.Special - before.Special
	c.whileBanned += after.WhileBanned - before.WhileBanned

	c.failures++
	c.byKind[ev.Kind]++
	svc := ev.Service
	if int(svc) >= serviceSlots {
		svc = 0
	}
	c.byService[svc][ev.Kind]++
	c.timeline.add(ev.Time, int(ev.Kind), -1)
	t := ev.Time.UnixNano()

	a := c.addrs.add(ev.Addr, t)
	a.V.kinds = a.V.kinds.With(ev.Kind)
	a.V.services |= 1 << svc
	a.V.allowed = a.V.allowed || allowed || special

	if allowed || special {
		// The address list shows (and marks) it; an allowlisted phone or
		// a loopback client is no attack on the networks and accounts.
		return
	}
	n := c.nets.add(network(ev.Addr), t)
	n.V.kinds = n.V.kinds.With(ev.Kind)
	n.V.addAddr(ev.Addr)

	if ev.User != "" {
		users := c.accounts
		if ev.Kind == parsers.UnknownExtension {
			users = c.exts
		}
		u := users.add(clip(ev.User), t)
		u.V.byKind[ev.Kind]++
		u.V.services |= 1 << svc
	}

	switch {
	case banned:
		a.V.bans++
		n.V.bans++
		c.ban(ban)
	case !whileBanned:
		p := c.eng.Prefix(ev.Addr)
		if _, was := c.banned[p]; !was {
			u := c.unbanned.add(p, t)
			u.V.kinds = u.V.kinds.With(ev.Kind)
			u.V.services |= 1 << svc
		}
	}
}

// success runs the compromise rule on a successful login.
func (c *Collector) success(ev *parsers.Event) {
	c.successes++
	comp, ok := c.eng.Success(ev)
	if !ok {
		return
	}
	c.compromiseCount++
	if e := c.addrs.get(comp.Addr); e != nil {
		e.V.compromised = true
	}
	if len(c.compromises) < c.opts.MaxListed {
		c.compromises = append(c.compromises, Compromise{
			IP: comp.Addr.String(), Prefix: comp.Prefix.String(), User: clip(comp.User), Source: comp.Source,
			Service: comp.Service.String(), Failures: comp.Failures, Time: comp.Time,
		})
	}
	if comp.Ban != nil {
		c.ban(*comp.Ban)
	}
}

// ban records a ban the engine decided.
func (c *Collector) ban(b engine.Ban) {
	c.bansByRule[b.Rule]++
	rule := len(c.rules) // the compromise rule's slot
	for i, r := range c.rules {
		if r.Name == b.Rule {
			rule = i
		}
	}
	c.timeline.add(b.Last, -1, rule)
	c.unbanned.remove(b.Prefix)
	if len(c.banned) < maxBanned {
		c.banned[b.Prefix] = struct{}{}
	}
	if len(c.bans) < c.opts.MaxListed {
		c.bans = append(c.bans, BanOf(b))
	}
}

// network is the /24 of an IPv4 address, the /64 of an IPv6 one.
func network(a netip.Addr) netip.Prefix {
	a = a.Unmap().WithZone("")
	bits := 64
	if a.Is4() {
		bits = 24
	}
	p, _ := a.Prefix(bits)
	return p
}

func (n *netInfo) addAddr(a netip.Addr) {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()[3]
		n.v4[b/64] |= 1 << (b % 64)
		return
	}
	for _, x := range n.v6 {
		if x == a {
			return
		}
	}
	if len(n.v6) < maxNetAddrs {
		n.v6 = append(n.v6, a)
	} else {
		n.more = true
	}
}

// clip bounds a user name to maxUser bytes, cut on a rune boundary and
// marked with "…" when cut, after writing what would not show as visible
// escapes (visible).
func clip(s string) string {
	s = visible(s)
	if len(s) <= maxUser {
		return s
	}
	cut := maxUser
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// BanOf is the JSON form of an engine's ban, as `sipguard scan --json`
// prints it too.
func BanOf(b engine.Ban) Ban {
	return Ban{
		IP: b.Addr.String(), Prefix: b.Prefix.String(), Rule: b.Rule, Count: b.Count,
		First: b.First.In(b.Last.Location()), Last: b.Last, BanFor: int64(b.Duration / time.Second),
		Offences: b.Offences,
	}
}

// visible writes the characters of s that do not show as Go escapes
// ("\u202e"): controls, and Unicode's format characters, among them the
// bidirectional overrides and isolates, which reorder the text after them
// (an attacker's "\u202enimda" reads as "admin", and reverses the counts
// and names beside it), and zero-width spaces, which make two names look
// alike. html/template escapes markup, not these.
func visible(s string) string {
	i := 0
	for i < len(s) && s[i] >= 0x20 && s[i] < 0x7f {
		i++ // printable ASCII: nothing to do (most names)
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.WriteString(s[:i])
	for _, r := range s[i:] {
		if unicode.IsGraphic(r) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRuneToGraphic(r)
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}
