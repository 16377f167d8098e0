package report

import (
	"cmp"
	"encoding/json"
	"io"
	"math/bits"
	"net/netip"
	"strings"
	"time"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/replay"
)

// Report is the review of a set of logs. Its JSON field names are a
// stable contract (docs/report.md); fields may be added. Counts marked
// "err" may be short by up to err (see topN).
type Report struct {
	Generated time.Time  `json:"generated"`
	Since     *time.Time `json:"since,omitempty"`
	// From and To are the times of the first and last event; left out
	// when there is none.
	From    *time.Time `json:"from,omitempty"`
	To      *time.Time `json:"to,omitempty"`
	Totals  Totals     `json:"totals"`
	Sources []Source   `json:"sources"`
	// DroppedByReason sums the parsers' dropped lines of every source.
	DroppedByReason map[string]int64 `json:"dropped_by_reason"`
	Rules           []Rule           `json:"rules"`
	// Kinds lists the failure kinds in the order of the charts.
	Kinds []string `json:"kinds"`
	// BucketSeconds is the width of Timeline's buckets: the narrowest of
	// 1, 5, 15 and 30 minutes, 1, 2, 6 and 12 hours, a day, a week (and
	// doublings of it) that draws the events in at most 168 buckets.
	BucketSeconds      int64        `json:"bucket_seconds"`
	Timeline           []Bucket     `json:"timeline"`
	Services           []ServiceRow `json:"services"`
	Compromises        []Compromise `json:"compromises"`
	Bans               []Ban        `json:"bans"`
	BansOmitted        int64        `json:"bans_omitted"`
	Addresses          []AddressRow `json:"addresses"`
	Networks           []NetworkRow `json:"networks"`
	Accounts           []UserRow    `json:"accounts"`
	Extensions         []UserRow    `json:"extensions"`
	BelowRules         []AddressRow `json:"below_rules"`
	CompromisesOmitted int64        `json:"compromises_omitted"`
	// Countries is set when a country database was used: the top
	// addresses and networks have a country where it knows them.
	Countries bool `json:"countries,omitempty"`
}

// Totals are the counts of the whole report.
type Totals struct {
	Lines        int64            `json:"lines"`
	Bytes        int64            `json:"bytes"`
	Failures     int64            `json:"failures"`
	Successes    int64            `json:"successes"`
	Dropped      int64            `json:"dropped"`
	Bans         int64            `json:"bans"`
	Compromises  int64            `json:"compromises"`
	Allowlisted  int64            `json:"allowlisted"`
	Special      int64            `json:"special"`
	WhileBanned  int64            `json:"while_banned"`
	BeforeSince  int64            `json:"before_since"`
	FailuresKind map[string]int64 `json:"failures_by_kind"`
}

// Source is what became of one log's lines.
type Source struct {
	Name            string           `json:"name"`
	Parser          string           `json:"parser"`
	Lines           int64            `json:"lines"`
	Bytes           int64            `json:"bytes"`
	Events          int64            `json:"events"`
	Successes       int64            `json:"successes"`
	Dropped         int64            `json:"dropped"`
	DroppedByReason map[string]int64 `json:"dropped_by_reason"`
}

// Rule is a rule's thresholds and the bans it would have made.
type Rule struct {
	Name     string   `json:"name"`
	Kinds    []string `json:"kinds"`
	MaxRetry int      `json:"max_retry"`
	FindTime int64    `json:"find_time"` // seconds
	BanTime  int64    `json:"ban_time"`  // seconds, first ban
	Bans     int64    `json:"bans"`
}

// Bucket is one time bucket of the timeline.
type Bucket struct {
	Start    time.Time        `json:"start"`
	Failures map[string]int64 `json:"failures"` // by kind, kinds with none left out
	Bans     map[string]int64 `json:"bans"`     // by rule, rules with none left out
}

// Total is the bucket's failures.
func (b Bucket) Total() int64 {
	var n int64
	for _, v := range b.Failures {
		n += v
	}
	return n
}

// ServiceRow is the failures against one service, by kind.
type ServiceRow struct {
	Service  string           `json:"service"`
	Failures int64            `json:"failures"`
	ByKind   map[string]int64 `json:"by_kind"`
}

// Ban is a ban the rules would have made; the fields of `scan --json`.
type Ban struct {
	IP       string    `json:"ip"`
	Prefix   string    `json:"prefix"`
	Rule     string    `json:"rule"`
	Count    int       `json:"count"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
	BanFor   int64     `json:"ban_for"`
	Offences int       `json:"offences"`
}

// Compromise is a successful login after failures.
type Compromise struct {
	IP       string    `json:"ip"`
	Prefix   string    `json:"prefix"`
	User     string    `json:"user"` // attacker-written text
	Source   string    `json:"source"`
	Service  string    `json:"service"`
	Failures int       `json:"failures"`
	Time     time.Time `json:"time"`
}

// AddressRow is one attacking address (or, in BelowRules, what the engine
// counts: the address, or its IPv6 prefix).
type AddressRow struct {
	Address     string    `json:"address"`
	Failures    int64     `json:"failures"`
	Err         int64     `json:"err"`
	First       time.Time `json:"first"`
	Last        time.Time `json:"last"`
	Kinds       []string  `json:"kinds"`
	Services    []string  `json:"services"`
	Bans        int64     `json:"bans"`
	Compromised bool      `json:"compromised,omitempty"`
	Allowlisted bool      `json:"allowlisted,omitempty"` // or special-purpose: never banned
	// Country is the ISO code of the address (of the IPv6 prefix's first
	// address), when the country database knows it.
	Country string `json:"country,omitempty"`
}

// NetworkRow is one attacking network: an IPv4 /24 or an IPv6 /64.
type NetworkRow struct {
	Network  string    `json:"network"`
	Failures int64     `json:"failures"`
	Err      int64     `json:"err"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
	// Addresses is the number of distinct addresses seen since the
	// network entered the list; AddressesMore says an IPv6 one had more.
	Addresses     int      `json:"addresses"`
	AddressesMore bool     `json:"addresses_more,omitempty"`
	Kinds         []string `json:"kinds"`
	Bans          int64    `json:"bans"`
	// Country is the ISO code of the network's first address, when the
	// country database knows it.
	Country string `json:"country,omitempty"`
}

// UserRow is one account, user name or extension tried (attacker-written
// text, cut to 64 bytes).
type UserRow struct {
	User     string           `json:"user"`
	Failures int64            `json:"failures"`
	Err      int64            `json:"err"`
	First    time.Time        `json:"first"`
	Last     time.Time        `json:"last"`
	ByKind   map[string]int64 `json:"by_kind"`
	Services []string         `json:"services"`
	// Exists: a wrong password for it was logged (auth_failed), so the
	// account exists and is being guessed: change its password first.
	Exists bool `json:"exists"`
	// WeakPassword: `sipguard audit` finds this account's password weak
	// (Options.WeakAccounts).
	WeakPassword bool `json:"weak_password,omitempty"`
}

// Report returns the report of what was added, with the replay's counts
// of each source (replay.Replay.Stats).
func (c *Collector) Report(streams []replay.Stats) *Report {
	r := &Report{
		Generated:       c.opts.Generated,
		DroppedByReason: map[string]int64{},
	}
	if !c.first.IsZero() {
		r.From, r.To = &c.first, &c.last
	}
	if !c.opts.Since.IsZero() {
		s := c.opts.Since
		r.Since = &s
	}
	t := &r.Totals
	for _, s := range streams {
		k := s.Counts
		r.Sources = append(r.Sources, Source{
			Name: s.Name, Parser: s.Parser, Lines: k.Lines, Bytes: s.Bytes, Events: k.Events,
			Successes: k.Successes, Dropped: k.Dropped, DroppedByReason: k.DropBy,
		})
		t.Lines += k.Lines
		t.Bytes += s.Bytes
		t.Dropped += k.Dropped
		for reason, n := range k.DropBy {
			r.DroppedByReason[reason] += n
		}
	}
	t.Failures, t.Successes, t.BeforeSince = c.failures, c.successes, c.skipped
	t.Allowlisted, t.Special, t.WhileBanned = c.allowed, c.special, c.whileBanned
	t.Compromises = c.compromiseCount
	t.FailuresKind = map[string]int64{}
	for _, k := range parsers.Kinds() {
		r.Kinds = append(r.Kinds, k.String())
		t.FailuresKind[k.String()] = c.byKind[k]
	}
	for _, n := range c.bansByRule {
		t.Bans += n
	}
	r.BansOmitted = t.Bans - int64(len(c.bans))
	r.CompromisesOmitted = c.compromiseCount - int64(len(c.compromises))
	for _, rule := range c.rules {
		r.Rules = append(r.Rules, Rule{
			Name: rule.Name, Kinds: kindNames(rule.Kinds), MaxRetry: rule.MaxRetry,
			FindTime: int64(rule.FindTime / time.Second), BanTime: int64(rule.BanTime / time.Second),
			Bans: c.bansByRule[rule.Name],
		})
	}
	if n := c.bansByRule[engine.CompromiseRuleName]; n > 0 {
		r.Rules = append(r.Rules, Rule{Name: engine.CompromiseRuleName, Kinds: []string{parsers.AuthSucceeded.String()}, Bans: n})
	}
	c.timeline.fit(reportBuckets)
	r.BucketSeconds = c.timeline.width
	r.Timeline = c.buckets()
	for s := parsers.Service(1); s < serviceSlots; s++ {
		row := ServiceRow{Service: s.String(), ByKind: map[string]int64{}}
		for _, k := range parsers.Kinds() {
			if n := c.byService[s][k]; n > 0 {
				row.ByKind[k.String()] = n
				row.Failures += n
			}
		}
		if row.Failures > 0 {
			r.Services = append(r.Services, row)
		}
	}
	r.Compromises = c.compromises
	r.Bans = c.bans
	top := c.opts.Top
	loc := c.loc
	if loc == nil {
		loc = time.UTC
	}
	country := c.opts.Country
	r.Countries = country != nil
	if country == nil {
		country = func(netip.Addr) string { return "" }
	}
	for _, e := range c.addrs.top(top, netip.Addr.Compare) {
		row := addressRow(e.Key.String(), e.entry, loc)
		row.Country = country(e.Key)
		r.Addresses = append(r.Addresses, row)
	}
	for _, e := range c.unbanned.top(top, comparePrefix) {
		row := addressRow(bans.String(e.Key), e.entry, loc)
		row.Country = country(e.Key.Addr())
		r.BelowRules = append(r.BelowRules, row)
	}
	for _, e := range c.nets.top(top, comparePrefix) {
		n := e.V
		row := NetworkRow{
			Network: e.Key.String(), Failures: e.Count, Err: e.Err, First: at(e.First, loc), Last: at(e.Last, loc),
			Addresses: len(n.v6), AddressesMore: n.more, Kinds: kindNames(n.kinds), Bans: n.bans,
			Country: country(e.Key.Addr()),
		}
		for _, w := range n.v4 {
			row.Addresses += bits.OnesCount64(w)
		}
		r.Networks = append(r.Networks, row)
	}
	r.Accounts = userRows(c.accounts.top(top, strings.Compare), loc)
	for i := range r.Accounts {
		r.Accounts[i].WeakPassword = c.opts.WeakAccounts[r.Accounts[i].User]
	}
	r.Extensions = userRows(c.exts.top(top, strings.Compare), loc)
	return r
}

// buckets lists the timeline from its first bucket to its last.
func (c *Collector) buckets() []Bucket {
	tl := &c.timeline
	if len(tl.buckets) == 0 {
		return nil
	}
	loc := c.loc
	out := make([]Bucket, 0, tl.hi-tl.lo+1)
	for k := tl.lo; k <= tl.hi; k++ {
		b := Bucket{Start: time.Unix(k*tl.width, 0).In(loc), Failures: map[string]int64{}, Bans: map[string]int64{}}
		if x := tl.buckets[k]; x != nil {
			for _, kind := range parsers.Kinds() {
				if n := x.kinds[kind]; n > 0 {
					b.Failures[kind.String()] = n
				}
			}
			for i, n := range x.bans {
				if n == 0 {
					continue
				}
				name := engine.CompromiseRuleName
				if i < len(c.rules) {
					name = c.rules[i].Name
				}
				b.Bans[name] = n
			}
		}
		out = append(out, b)
	}
	return out
}

// at is a time of an entry, in the zone of the logs.
func at(ns int64, loc *time.Location) time.Time { return time.Unix(0, ns).In(loc) }

func addressRow(addr string, e *entry[addrInfo], loc *time.Location) AddressRow {
	return AddressRow{
		Address: addr, Failures: e.Count, Err: e.Err, First: at(e.First, loc), Last: at(e.Last, loc),
		Kinds: kindNames(e.V.kinds), Services: serviceNames(e.V.services), Bans: e.V.bans,
		Compromised: e.V.compromised, Allowlisted: e.V.allowed,
	}
}

func userRows(es []keyed[string, userInfo], loc *time.Location) []UserRow {
	var out []UserRow
	for _, e := range es {
		row := UserRow{
			User: e.Key, Failures: e.Count, Err: e.Err, First: at(e.First, loc), Last: at(e.Last, loc),
			ByKind: map[string]int64{}, Services: serviceNames(e.V.services),
			Exists: e.V.byKind[parsers.AuthFailed] > 0,
		}
		for _, k := range parsers.Kinds() {
			if n := e.V.byKind[k]; n > 0 {
				row.ByKind[k.String()] = n
			}
		}
		out = append(out, row)
	}
	return out
}

func kindNames(s parsers.KindSet) []string {
	out := []string{}
	for _, k := range parsers.Kinds() {
		if s.Has(k) {
			out = append(out, k.String())
		}
	}
	return out
}

func serviceNames(set uint32) []string {
	out := []string{}
	for s := parsers.Service(1); s < serviceSlots; s++ {
		if set&(1<<s) != 0 {
			out = append(out, s.String())
		}
	}
	return out
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
