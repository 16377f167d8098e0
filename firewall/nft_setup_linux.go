//go:build linux

package firewall

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

var hookNums = map[string]*nftables.ChainHook{
	"input":   nftables.ChainHookInput,
	"forward": nftables.ChainHookForward,
	// prerouting: Policy.Early, at priority raw.
	"prerouting": nftables.ChainHookPrerouting,
}

// hookPriority is the priority of sipguard's chain on hook: -10 (before
// the usual filter chains), raw (-300, before conntrack) for prerouting.
func hookPriority(hook string) nftables.ChainPriority {
	if hook == "prerouting" {
		return *nftables.ChainPriorityRaw
	}
	return chainPriority
}

// kernelState is what inspect read of our table.
type kernelState struct {
	table  bool
	sets   map[string]*nftables.Set
	chains map[string]*nftables.Chain
	rules  map[string][]*nftables.Rule
	ports  map[string][]nftables.SetElement // set name → elements, sorted
	allow  map[string][]nftables.SetElement // set name → elements, sorted (allow and country sets)
	// countriesRead: the country sets' elements were read (see
	// policyState.countriesDue); when not, they are taken as they should be.
	countriesRead bool
}

func (n *NFT) inspect() (*kernelState, error) {
	st := &kernelState{
		sets:   map[string]*nftables.Set{},
		chains: map[string]*nftables.Chain{},
		rules:  map[string][]*nftables.Rule{},
		ports:  map[string][]nftables.SetElement{},
		allow:  map[string][]nftables.SetElement{},
	}
	err := n.talk(func(c *nftables.Conn) error {
		_, err := c.ListTableOfFamily(n.table.Name, nftables.TableFamilyINet)
		return err
	})
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return st, nil
		}
		return nil, fmt.Errorf("get table inet %s: %w", n.table.Name, err)
	}
	st.table = true
	var sets []*nftables.Set
	if err := n.talk(func(c *nftables.Conn) (err error) { sets, err = c.GetSets(n.table); return err }); err != nil {
		return nil, fmt.Errorf("get sets: %w", err)
	}
	for _, s := range sets {
		st.sets[s.Name] = s
	}
	var chains []*nftables.Chain
	if err := n.talk(func(c *nftables.Conn) (err error) {
		chains, err = c.ListChainsOfTableFamily(nftables.TableFamilyINet)
		return err
	}); err != nil {
		return nil, fmt.Errorf("get chains: %w", err)
	}
	for _, c := range chains {
		if c.Table != nil && c.Table.Name == n.table.Name {
			st.chains[c.Name] = c
		}
	}
	for _, h := range n.hooks {
		if c, ok := st.chains[h]; ok {
			var rules []*nftables.Rule
			if err := n.talk(func(nc *nftables.Conn) (err error) { rules, err = nc.GetRules(n.table, c); return err }); err != nil {
				return nil, fmt.Errorf("get rules of chain %s: %w", h, err)
			}
			st.rules[h] = rules
		}
	}
	// The elements of the sets that hold what the contract says exactly.
	elements := func(name string) ([]nftables.SetElement, error) {
		s, ok := st.sets[name]
		if !ok {
			return nil, nil
		}
		var els []nftables.SetElement
		if err := n.talk(func(c *nftables.Conn) (err error) { els, err = c.GetSetElements(s); return err }); err != nil {
			return nil, fmt.Errorf("get elements of %s: %w", name, err)
		}
		return els, nil
	}
	for _, pr := range n.profiles {
		for _, ps := range pr.portSets {
			els, err := elements(ps.Name)
			if err != nil {
				return nil, err
			}
			st.ports[ps.Name] = sortElements(els)
		}
	}
	for _, name := range allowSetNames {
		els, err := elements(name)
		if err != nil {
			return nil, err
		}
		st.allow[name] = sortElements(els)
	}
	if now := n.now(); n.pol.countriesDue(now) {
		for _, s := range n.pol.country {
			els, err := elements(s.Name)
			if err != nil {
				return nil, err
			}
			st.allow[s.Name] = sortElements(els)
		}
		st.countriesRead, n.pol.countriesRead = true, now
	}
	for _, s := range n.pol.sipSets {
		els, err := elements(s.Name)
		if err != nil {
			return nil, err
		}
		st.ports[s.Name] = sortElements(els)
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

	want := slices.Clone(n.allowSets[:])
	for _, pr := range n.profiles {
		want = append(want, pr.sets[:]...)
		for _, proto := range []string{"tcp", "udp"} {
			if s := pr.portSets[proto]; s != nil {
				want = append(want, s)
			}
		}
	}
	want = append(want, n.pol.sets()...)
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
	// Ban and port sets no profile wants any more (ports no longer
	// asked for, a rule's ports changed): their rules go with them.
	var stale []string
	for name := range st.sets {
		if ourSetName().MatchString(name) && !slices.ContainsFunc(want, func(s *nftables.Set) bool { return s.Name == name }) {
			stale = append(stale, name)
		}
	}
	slices.Sort(stale)
	stale = append(stale, n.policyStale(st)...)
	for _, name := range stale {
		dropSets = append(dropSets, name)
		fixes = append(fixes, "delete set "+name)
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
	wire, err := n.planWire(st)
	if err != nil {
		return ensured{}, err
	}
	fixes = append(fixes, wire.fixes...)
	if len(fixes) == 0 && len(wire.rewrite) == 0 && !n.portsDiffer(st) && !n.allowDiffers(st) && !n.sipPortsDiffer(st) && !n.countriesDiffer(st) {
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
	if err := wire.apply(n, c); err != nil {
		return ensured{}, err
	}
	tx := n.newTxn(0)
	for _, pr := range n.profiles {
		for _, proto := range []string{"tcp", "udp"} {
			s := pr.portSets[proto]
			if s == nil || (!create[s.Name] && sameElements(st.ports[s.Name], pr.ports[proto])) {
				continue
			}
			if !create[s.Name] {
				c.FlushSet(s)
				fixes = append(fixes, "ports in set "+s.Name)
			}
			if err := tx.add(s, pr.ports[proto]); err != nil {
				return ensured{}, err
			}
		}
	}
	for i, s := range n.allowSets {
		if !create[s.Name] && sameElements(st.allow[s.Name], n.allow[i]) {
			continue
		}
		if !create[s.Name] {
			c.FlushSet(s)
			fixes = append(fixes, "elements of set "+s.Name)
		}
		if err := tx.add(s, n.allow[i]); err != nil {
			return ensured{}, err
		}
	}
	// The allowed countries' networks: flushed and loaded in the same
	// transaction as the rest, so a reload never leaves them out.
	for i, s := range n.pol.country {
		if s == nil || (!create[s.Name] && !n.countriesDiffer(st)) {
			continue
		}
		if !create[s.Name] {
			c.FlushSet(s)
			fixes = append(fixes, "elements of set "+s.Name)
		}
		tx.ops += len(n.pol.countryEls[i])
		if err := tx.add(s, n.pol.countryEls[i]); err != nil {
			return ensured{}, err
		}
	}
	for proto, s := range n.pol.sipSets {
		if !create[s.Name] && sameElements(st.ports[s.Name], n.pol.sipEls[proto]) {
			continue
		}
		if !create[s.Name] {
			c.FlushSet(s)
			fixes = append(fixes, "ports in set "+s.Name)
		}
		if err := tx.add(s, n.pol.sipEls[proto]); err != nil {
			return ensured{}, err
		}
	}
	// Meters of an older rate keep it in their elements: start afresh.
	for _, s := range n.pol.meter {
		if s != nil && !create[s.Name] && len(rewrite) > 0 {
			c.FlushSet(s)
		}
	}
	if n.pol.learn[0] != nil && (create[n.pol.learn[0].Name] || create[n.pol.learn[1].Name]) {
		els := n.learnedElements()
		for i, s := range n.pol.learn {
			if create[s.Name] {
				if err := tx.add(s, els[i]); err != nil {
					return ensured{}, err
				}
			}
		}
	}
	reloaded := 0
	if reload {
		now := n.now()
		var o elemOps
		for _, pr := range n.profiles {
			for _, m := range pr.maps() {
				for p, exp := range m {
					if !create[pr.sets[kindOf(p)].Name] || exp.Sub(now) < restoreMargin {
						continue
					}
					o.put(pr, p, exp.Sub(now))
					reloaded++
				}
			}
		}
		tx.ops += o.n
		tx.splittable = true
		if err := tx.queue(&o); err != nil {
			return ensured{}, err
		}
	}
	if err := tx.commit(); err != nil {
		return ensured{}, fmt.Errorf("set up table inet %s: %w", n.table.Name, err)
	}
	if !st.table {
		fixes = []string{"table inet " + n.table.Name + " with its sets, chains and rules"}
	}
	fresh := true
	for _, pr := range n.profiles {
		for _, s := range pr.sets {
			fresh = fresh && create[s.Name]
		}
	}
	return ensured{fixes: fixes, reloaded: reloaded, fresh: fresh}, nil
}

func (n *NFT) portsDiffer(st *kernelState) bool {
	for _, pr := range n.profiles {
		for proto, s := range pr.portSets {
			if !sameElements(st.ports[s.Name], pr.ports[proto]) {
				return true
			}
		}
	}
	return false
}

// SetAllow loads allow into the sets allow4 and allow6, in one
// transaction (which also brings back anything else of the table that
// differs from the contract).
func (n *NFT) SetAllow(ctx context.Context, allow []netip.Prefix) error {
	els, err := allowElements(allow)
	if err != nil {
		return err
	}
	if err := n.lock(ctx); err != nil {
		return err
	}
	defer n.mu.Unlock()
	old := n.allow
	n.allow = els
	res, err := n.ensureLocked(true)
	if err != nil {
		n.allow = old
		return fmt.Errorf("load the allowlist: %w", err)
	}
	if len(res.fixes) > 0 {
		n.log.Info().Int("entries", len(allow)).Str("changes", strings.Join(res.fixes, ", ")).Msg("allowlist loaded")
	}
	return nil
}

func (n *NFT) allowDiffers(st *kernelState) bool {
	for i, s := range n.allowSets {
		if !sameElements(st.allow[s.Name], n.allow[i]) {
			return true
		}
	}
	return false
}

// allowElements returns the elements of the allow sets for allow: a start
// and an end element (the first address after) per range, no end for a
// range reaching the top of the address space; sorted.
func allowElements(allow []netip.Prefix) ([2][]nftables.SetElement, error) {
	var out [2][]nftables.SetElement
	v4, v6, err := allowRanges(allow)
	if err != nil {
		return out, err
	}
	for i, rs := range [][]addrRange{v4, v6} {
		for _, r := range rs {
			out[i] = append(out[i], nftables.SetElement{Key: r.lo.AsSlice()})
			if end := r.hi.Next(); end.IsValid() {
				out[i] = append(out[i], nftables.SetElement{Key: end.AsSlice(), IntervalEnd: true})
			}
		}
	}
	return out, nil
}

// portElements are the elements of an interval set of ports holding rs:
// each range's first port, and the port after its last as the range's end
// (none for a range up to 65535: the interval then runs to the top).
func portElements(rs [][2]uint16) []nftables.SetElement {
	var out []nftables.SetElement
	for _, r := range rs {
		out = append(out, nftables.SetElement{Key: binary.BigEndian.AppendUint16(nil, r[0])})
		if r[1] < 65535 {
			out = append(out, nftables.SetElement{Key: binary.BigEndian.AppendUint16(nil, r[1]+1), IntervalEnd: true})
		}
	}
	return sortElements(out)
}

// sortElements returns the keys and interval flags of els, sorted by key
// (a start before an end of the same key), as allowElements makes them.
func sortElements(els []nftables.SetElement) []nftables.SetElement {
	out := make([]nftables.SetElement, len(els))
	for i, e := range els {
		out[i] = nftables.SetElement{Key: e.Key, IntervalEnd: e.IntervalEnd}
	}
	slices.SortFunc(out, func(a, b nftables.SetElement) int {
		if c := bytes.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return cmp.Compare(boolInt(a.IntervalEnd), boolInt(b.IntervalEnd))
	})
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sameElements(have, want []nftables.SetElement) bool {
	return slices.EqualFunc(have, want, func(a, b nftables.SetElement) bool {
		return bytes.Equal(a.Key, b.Key) && a.IntervalEnd == b.IntervalEnd
	})
}

func sameSet(have, want *nftables.Set) bool {
	return have.KeyType.Name == want.KeyType.Name && have.KeyType.Bytes == want.KeyType.Bytes &&
		have.Interval == want.Interval && have.HasTimeout == want.HasTimeout &&
		!have.IsMap && !have.Anonymous && !have.Constant && !have.Concatenation
}

func sameHook(have *nftables.Chain, hook string) bool {
	return have.Type == nftables.ChainTypeFilter &&
		have.Hooknum != nil && *have.Hooknum == *hookNums[hook] &&
		have.Priority != nil && *have.Priority == hookPriority(hook)
}

func (n *NFT) chain(hook string) *nftables.Chain {
	accept := nftables.ChainPolicyAccept
	return &nftables.Chain{
		Name: hook, Table: n.table, Type: nftables.ChainTypeFilter,
		Hooknum: hookNums[hook], Priority: nftables.ChainPriorityRef(hookPriority(hook)), Policy: &accept,
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

func isAllowRule(r *nftables.Rule) bool {
	tag, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	return strings.HasPrefix(tag, rulePrefix+"allow")
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

// ruleSpecs returns the rules of each chain, in order: the accepts of the
// allowlist first (on every port: they only skip sipguard's drops), then
// the drops of each profile, the default's first, then the policy's
// rules (nft_policy_linux.go).
func (n *NFT) ruleSpecs() []ruleSpec {
	var out []ruleSpec
	for i, s := range n.allowSets {
		out = append(out, ruleSpec{rulePrefix + s.Name, saddrRule(s, i == 1, nil, expr.VerdictAccept)})
	}
	for _, pr := range n.profiles {
		for k, s := range pr.sets {
			v6 := k == int(kindBan6) || k == int(kindNet6)
			if len(pr.portSets) == 0 {
				out = append(out, ruleSpec{rulePrefix + s.Name, saddrRule(s, v6, nil, expr.VerdictDrop)})
				continue
			}
			for _, proto := range []string{"tcp", "udp"} {
				if ps := pr.portSets[proto]; ps != nil {
					out = append(out, ruleSpec{rulePrefix + s.Name + " " + proto, saddrRule(s, v6, ps, expr.VerdictDrop)})
				}
			}
		}
	}
	// The policy of the SIP ports last: a banned phone stays banned.
	return append(out, n.pol.rules()...)
}

// familyMatch returns `meta nfproto ipv4|ipv6`, and the offset and size
// of the source address in that family's header.
func familyMatch(v6 bool) (ex []expr.Any, off, size uint32) {
	proto, off, size := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4)
	if v6 {
		proto, off, size = unix.NFPROTO_IPV6, 8, 16
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}, off, size
}

// saddrRule returns `meta nfproto ipv4|ipv6 [meta l4proto P P dport
// @ports] ip|ip6 saddr @set counter drop|accept`. The nfproto guard keeps
// the IPv4 offset from being read in an IPv6 packet (inet tables see
// both).
func saddrRule(s *nftables.Set, v6 bool, ports *nftables.Set, verdict expr.VerdictKind) []expr.Any {
	ex, off, size := familyMatch(v6)
	if ports != nil {
		// udp_ports, udp_ports_r<hash>, the policy's sip_udp (the hash is
		// hexadecimal: no "udp" in a TCP set's name).
		l4 := byte(unix.IPPROTO_TCP)
		if strings.Contains(ports.Name, "udp") {
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
		&expr.Verdict{Kind: verdict},
	)
}
