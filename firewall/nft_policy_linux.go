//go:build linux

package firewall

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// The access policy of the SIP ports (Policy; see the NFT contract). In
// strict and responsive mode the table has, besides the ban sets:
//
//   - set sip_tcp, sip_udp { type inet_service; flags interval; }: the
//     SIP ports (Policy.SIPPorts), one set per protocol used;
//   - set learn4, learn6 { type ipv4_addr|ipv6_addr; flags timeout; }:
//     the learned phones, each with its own timeout (Learn);
//   - with Policy.Countries, set country4, country6 { type
//     ipv4_addr|ipv6_addr; flags interval; }: the networks of the allowed
//     countries, merged into ranges;
//   - responsive: set meter4, meter6 { flags dynamic,timeout; size
//     meterSize; }: one element per unknown source, holding its limit.
//
// and each chain, after the bans (a banned phone stays banned), per
// protocol:
//
//	meta l4proto udp udp dport @sip_udp ct state established,related counter accept comment "sipguard policy established udp"
//	meta nfproto ipv4 meta l4proto udp udp dport @sip_udp ip saddr @learn4 counter accept comment "sipguard learn4 udp"
//	meta nfproto ipv6 meta l4proto udp udp dport @sip_udp ip6 saddr @learn6 counter accept comment "sipguard learn6 udp"
//	meta nfproto ipv4 meta l4proto udp udp dport @sip_udp ip saddr @country4 counter accept comment "sipguard country4 udp"
//	meta nfproto ipv6 meta l4proto udp udp dport @sip_udp ip6 saddr @country6 counter accept comment "sipguard country6 udp"
//
// then per SIP port, strict:
//
//	meta l4proto udp udp dport 5060 counter drop comment "sipguard policy drop 5060/udp"
//
// responsive, per family:
//
//	meta nfproto ipv4 meta l4proto udp udp dport 5060 update @meter4 { ip saddr limit rate over 20/minute } counter drop comment "sipguard policy limit4 5060/udp 20/minute"
//	meta nfproto ipv6 meta l4proto udp udp dport 5060 update @meter6 { ip6 saddr & ffff:ffff:ffff:ffff:: limit rate over 20/minute } counter drop comment "sipguard policy limit6 5060/udp 20/minute per /64"
//
// An IPv6 meter covers the source's prefix (Policy.IPv6Prefix), named in
// the comment so that a changed prefix replaces the rule.
//
// The allowlist's accepts come first in the chain, as always. In
// responsive mode the established accept also asks `ct direction reply`:
// only replies to the host's own requests skip the meter. Without it a
// scanner answered once (UDP from one source port) would be "established"
// from then on and never limited again.
//
// With Policy.Early the chain hooks prerouting at priority raw (-300),
// ahead of conntrack: no ct state exists there, so the established accept
// is left out, and in strict mode replies from addresses neither allowed
// nor learned to the SIP ports are dropped too.

// meterSize bounds the sources metered at once in responsive mode. When
// the meter is full, a new source is not metered (the kernel's dynset
// fails open) until elements expire (after one unit of the rate idle).
const meterSize = 262144

// policySetID is the first set ID of the policy sets (unique within a
// transaction; the profiles use the low numbers).
const policySetID = 1001

// ourPolicySet matches the names of the policy's sets: those no longer
// wanted (the mode changed to open) are deleted.
// Compiled when first needed, not at every start of every command.
var ourPolicySet = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(sip_tcp|sip_udp|learn4|learn6|meter4|meter6|country4|country6)$`)
})

// policyState is the policy part of NFT, guarded by NFT.mu.
type policyState struct {
	policy  Policy
	sipEls  map[string][]nftables.SetElement // protocol → elements of sip_<proto>, sorted
	sipSets map[string]*nftables.Set         // protocol → sip_<proto>
	learn   [2]*nftables.Set                 // learn4, learn6
	meter   [2]*nftables.Set                 // meter4, meter6
	country [2]*nftables.Set                 // country4, country6 (nil without Policy.Countries)
	// countryEls are the elements of country4 and country6, sorted.
	countryEls [2][]nftables.SetElement
	// countriesRead is when the country sets were last read back (zero:
	// read them at the next set-up); see countriesDue.
	countriesRead time.Time
	learned       map[netip.Addr]time.Time // learned addresses → expiry
}

// setPolicy makes the sets of pol (nothing when it is not enforced).
func (ps *policyState) setPolicy(t *nftables.Table, pol Policy) error {
	ps.policy, ps.sipEls, ps.sipSets = pol, map[string][]nftables.SetElement{}, map[string]*nftables.Set{}
	ps.learn, ps.meter, ps.country, ps.countryEls = [2]*nftables.Set{}, [2]*nftables.Set{}, [2]*nftables.Set{}, [2][]nftables.SetElement{}
	ps.countriesRead = time.Time{}
	if ps.learned == nil {
		ps.learned = map[netip.Addr]time.Time{}
	}
	if !pol.Enforced() {
		return nil
	}
	if pol.Mode == PolicyResponsive && pol.Rate.Count == 0 {
		return fmt.Errorf("responsive policy without a rate")
	}
	ranges, err := portRanges(pol.SIPPorts)
	if err != nil {
		return fmt.Errorf("sip ports: %w", err)
	}
	if len(ranges) == 0 {
		return fmt.Errorf("%s policy without SIP ports", pol.Mode)
	}
	for i, proto := range []string{"tcp", "udp"} {
		if rs := ranges[proto]; len(rs) > 0 {
			ps.sipEls[proto] = portElements(rs)
			ps.sipSets[proto] = &nftables.Set{Table: t, Name: "sip_" + proto, ID: policySetID + uint32(i), KeyType: nftables.TypeInetService, Interval: true}
		}
	}
	for i, kt := range []nftables.SetDatatype{nftables.TypeIPAddr, nftables.TypeIP6Addr} {
		ps.learn[i] = &nftables.Set{Table: t, Name: fmt.Sprintf("learn%d", 4+2*i), ID: policySetID + 2 + uint32(i), KeyType: kt, HasTimeout: true}
		if pol.Mode == PolicyResponsive {
			ps.meter[i] = &nftables.Set{
				Table: t, Name: fmt.Sprintf("meter%d", 4+2*i), ID: policySetID + 4 + uint32(i), KeyType: kt,
				HasTimeout: true, Dynamic: true, Size: meterSize,
			}
		}
		if len(pol.Countries) > 0 {
			ps.country[i] = &nftables.Set{Table: t, Name: fmt.Sprintf("country%d", 4+2*i), ID: policySetID + 6 + uint32(i), KeyType: kt, Interval: true}
		}
	}
	if len(pol.Countries) > 0 {
		if ps.countryEls, err = allowElements(pol.Countries); err != nil {
			return fmt.Errorf("countries: %w", err)
		}
	}
	return nil
}

// sets returns the policy's sets.
func (ps *policyState) sets() []*nftables.Set {
	var out []*nftables.Set
	for _, proto := range []string{"tcp", "udp"} {
		if s := ps.sipSets[proto]; s != nil {
			out = append(out, s)
		}
	}
	for _, s := range slices.Concat(ps.learn[:], ps.country[:], ps.meter[:]) {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// meterTimeout is how long a source's meter lives without a packet: one
// unit of the rate (the limit has refilled by then), at least a minute.
func (ps *policyState) meterTimeout() time.Duration {
	return max(ps.policy.Rate.Per, time.Minute)
}

// rules returns the policy's rules, after the bans in every chain.
func (ps *policyState) rules() []ruleSpec {
	if !ps.policy.Enforced() {
		return nil
	}
	var out []ruleSpec
	for _, proto := range []string{"tcp", "udp"} {
		set := ps.sipSets[proto]
		if set == nil {
			continue
		}
		if !ps.policy.Early {
			ex := append(l4Match(proto), &expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID})
			ex = append(ex, ctStateMatch(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED)...)
			if ps.policy.Mode == PolicyResponsive {
				ex = append(ex,
					&expr.Ct{Register: 1, Key: expr.CtKeyDIRECTION},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{1}}, // IP_CT_DIR_REPLY
				)
			}
			ex = append(ex, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictAccept})
			out = append(out, ruleSpec{rulePrefix + "policy established " + proto, ex})
		}
		// Learned phones, then the allowed countries: both admitted.
		for i, s := range append(ps.learn[:], ps.country[:]...) {
			if s != nil {
				out = append(out, ruleSpec{rulePrefix + s.Name + " " + proto, saddrRule(s, i%2 == 1, set, expr.VerdictAccept)})
			}
		}
	}
	for _, p := range ps.policy.SIPPorts {
		if ps.policy.Mode == PolicyStrict {
			ex := append(portMatch(p), &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})
			out = append(out, ruleSpec{rulePrefix + "policy drop " + p.String(), ex})
			continue
		}
		for i, s := range ps.meter {
			out = append(out, ruleSpec{rulePrefix + LimitRule(ps.policy, i == 1, p), ps.limitRule(s, i == 1, p)})
		}
	}
	return out
}

// limitRule is `meta nfproto F meta l4proto P P dport PORT update @meter
// { ip saddr limit rate over R burst N packets } counter drop`. The burst
// is the rate's count: a new source may send Count packets at once (a
// phone's REGISTER, its challenge answer, a few OPTIONS), then Count per
// unit of time; what comes faster is dropped.
func (ps *policyState) limitRule(meter *nftables.Set, v6 bool, p Port) []expr.Any {
	ex, off, size := familyMatch(v6)
	ex = append(ex, portMatch(p)...)
	r := ps.policy.Rate
	ex = append(ex, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: size})
	if v6 {
		mask := net.CIDRMask(ps.policy.MeterPrefix(), 128)
		ex = append(ex, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 16, Mask: mask, Xor: make([]byte, 16)})
	}
	return append(ex,
		&expr.Dynset{
			SrcRegKey: 1, SetName: meter.Name, SetID: meter.ID, Operation: uint32(unix.NFT_DYNSET_OP_UPDATE),
			Timeout: ps.meterTimeout(),
			Exprs:   []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: r.Count, Unit: expr.LimitTime(r.Per / time.Second), Over: true, Burst: uint32(min(r.Count, 1<<31))}},
		},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	)
}

// l4Match is `meta l4proto P`, then the destination port loaded into
// register 1.
func l4Match(proto string) []expr.Any {
	l4 := byte(unix.IPPROTO_TCP)
	if proto == "udp" {
		l4 = unix.IPPROTO_UDP
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{l4}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	}
}

// portMatch is `meta l4proto P P dport PORT` (or a range).
func portMatch(p Port) []expr.Any {
	ex := l4Match(p.Proto)
	from := binaryutil.BigEndian.PutUint16(p.Port)
	if p.Last <= p.Port {
		return append(ex, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: from})
	}
	return append(ex, &expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: from, ToData: binaryutil.BigEndian.PutUint16(p.Last)})
}

// ctStateMatch is `ct state BITS` (any of them).
func ctStateMatch(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// isPolicyRule reports a rule of the policy (its accepts and drops are
// counted apart from the bans': see State and PolicyCounters).
func isPolicyRule(r *nftables.Rule) bool {
	tag, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	return strings.HasPrefix(tag, rulePrefix+"policy ") || strings.HasPrefix(tag, rulePrefix+"learn") ||
		strings.HasPrefix(tag, rulePrefix+"country")
}

// isPolicyDrop reports a rule dropping what the policy does not admit.
func isPolicyDrop(r *nftables.Rule) bool {
	tag, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	return strings.HasPrefix(tag, rulePrefix+"policy drop ") || strings.HasPrefix(tag, rulePrefix+"policy limit")
}

// SetPolicy replaces the access policy of the SIP ports, in one
// transaction: a mode switch never leaves the ports open or closed in
// between. The learned addresses in memory are loaded into learn sets it
// creates. Policy.Early is fixed at NewNFT (the chains' hooks): a
// different one is refused.
func (n *NFT) SetPolicy(ctx context.Context, pol Policy) error {
	if err := n.lock(ctx); err != nil {
		return err
	}
	defer n.mu.Unlock()
	if pol.Early != n.pol.policy.Early {
		return fmt.Errorf("early changes the chains' hooks: it takes effect on restart")
	}
	old := n.pol.policy
	if err := n.pol.setPolicy(n.table, pol); err != nil {
		return err
	}
	res, err := n.ensureLocked(true)
	if err != nil {
		_ = n.pol.setPolicy(n.table, old)
		return fmt.Errorf("set the policy %s: %w", pol.Mode, err)
	}
	if len(res.fixes) > 0 {
		n.log.Info().Str("mode", cmpOr(pol.Mode, PolicyOpen)).Str("changes", strings.Join(res.fixes, ", ")).Msg("policy of the SIP ports set")
	}
	return nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Learn admits each address to the SIP ports for its timeout (renewing
// it if learned already), in one transaction. In open mode it is only
// remembered, to be loaded when a policy is set.
func (n *NFT) Learn(ctx context.Context, ls ...Learned) error {
	if err := n.lock(ctx); err != nil {
		return err
	}
	defer n.mu.Unlock()
	now := n.now()
	var pre, del, add [2][]nftables.SetElement
	for _, l := range ls {
		a := l.Addr.Unmap()
		if !a.IsValid() || l.Timeout <= 0 {
			return fmt.Errorf("%w: learn %s for %s", ErrInvalidBan, l.Addr, l.Timeout)
		}
		i := 0
		if a.Is6() {
			i = 1
		}
		el := nftables.SetElement{Key: a.AsSlice(), Timeout: kernelTimeout(l.Timeout)}
		pre[i], del[i], add[i] = append(pre[i], el), append(del[i], nftables.SetElement{Key: el.Key}), append(add[i], el)
	}
	// add, delete, add: the new timeout on every kernel (see elemOps).
	if err := n.learnTxn(pre, del, add); err != nil {
		return fmt.Errorf("learn addresses: %w", err)
	}
	for _, l := range ls {
		n.pol.learned[l.Addr.Unmap()] = now.Add(l.Timeout)
	}
	return nil
}

// Forget removes learned addresses (those not learned are ignored).
func (n *NFT) Forget(ctx context.Context, addrs ...netip.Addr) error {
	if err := n.lock(ctx); err != nil {
		return err
	}
	defer n.mu.Unlock()
	var pre, del [2][]nftables.SetElement
	for _, a := range addrs {
		a = a.Unmap()
		if _, ok := n.pol.learned[a]; !ok || !a.IsValid() {
			continue
		}
		i := 0
		if a.Is6() {
			i = 1
		}
		// add, delete: the delete finds the element even if it just expired.
		pre[i] = append(pre[i], nftables.SetElement{Key: a.AsSlice(), Timeout: time.Second})
		del[i] = append(del[i], nftables.SetElement{Key: a.AsSlice()})
	}
	if err := n.learnTxn(pre, del); err != nil {
		return fmt.Errorf("forget learned addresses: %w", err)
	}
	for _, a := range addrs {
		delete(n.pol.learned, a.Unmap())
	}
	return nil
}

// learnTxn sends, in one transaction, the adds of pre, the deletes of
// del and the adds of add (if any) to learn4 and learn6, [0] and [1]. It
// does nothing without learn sets (open mode) or elements.
func (n *NFT) learnTxn(pre, del [2][]nftables.SetElement, add ...[2][]nftables.SetElement) error {
	if n.pol.learn[0] == nil || len(pre[0])+len(pre[1]) == 0 {
		return nil
	}
	tx := n.newTxn(0)
	for pass, els := range append([][2][]nftables.SetElement{pre, del}, add...) {
		for i, s := range n.pol.learn {
			if err := tx.elements(s, els[i], pass == 1); err != nil {
				return err
			}
		}
	}
	return tx.commit()
}

// learnedElements returns the learned addresses not expired, as elements
// of learn4 and learn6 with the time they have left: what a created learn
// set is loaded with.
func (n *NFT) learnedElements() [2][]nftables.SetElement {
	var out [2][]nftables.SetElement
	now := n.now()
	for a, exp := range n.pol.learned {
		left := exp.Sub(now)
		if left < restoreMargin {
			if exp.Before(now.Add(-sweepGrace)) {
				delete(n.pol.learned, a)
			}
			continue
		}
		i := 0
		if a.Is6() {
			i = 1
		}
		out[i] = append(out[i], nftables.SetElement{Key: a.AsSlice(), Timeout: kernelTimeout(left)})
	}
	return out
}

// Counter is what one rule of sipguard's chains counted, summed over the
// chains (hooks).
type Counter struct {
	Rule    string `json:"rule"` // its comment without "sipguard ": "ban4", "policy drop 5060/udp", "learn4 udp"
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// Counters reads the counters of sipguard's rules, in chain order: how
// many packets each accept and drop saw (the allowlist, the bans, the
// policy's accepts, drops per port and limits).
func (n *NFT) Counters(ctx context.Context) ([]Counter, error) {
	if err := n.lock(ctx); err != nil {
		return nil, err
	}
	defer n.mu.Unlock()
	var out []Counter
	idx := map[string]int{}
	for _, h := range n.hooks {
		var rules []*nftables.Rule
		if err := n.talk(func(c *nftables.Conn) (err error) {
			rules, err = c.GetRules(n.table, &nftables.Chain{Name: h, Table: n.table})
			return err
		}); err != nil {
			return nil, fmt.Errorf("read counters of chain %s: %w", h, err)
		}
		for _, r := range rules {
			tag, ok := userdata.GetString(r.UserData, userdata.TypeComment)
			if !ok || !strings.HasPrefix(tag, rulePrefix) {
				continue
			}
			name := strings.TrimPrefix(tag, rulePrefix)
			i, seen := idx[name]
			if !seen {
				i = len(out)
				idx[name] = i
				out = append(out, Counter{Rule: name})
			}
			for _, e := range r.Exprs {
				if c, ok := e.(*expr.Counter); ok {
					out[i].Packets += c.Packets
					out[i].Bytes += c.Bytes
				}
			}
		}
	}
	return out, nil
}

// policyStale returns the names of the policy's sets the table holds and
// the policy no longer wants (the mode went back to open, responsive
// became strict): they are deleted, with the rules using them.
func (n *NFT) policyStale(st *kernelState) []string {
	var out []string
	for name := range st.sets {
		if ourPolicySet().MatchString(name) && !slices.ContainsFunc(n.pol.sets(), func(s *nftables.Set) bool { return s.Name == name }) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// countriesEvery is how often Reconcile's checks read the country sets
// back: tens of thousands of interval elements take 150 ms to read (10,000
// networks, measured), too much for the structural check every 2 s. A set
// deleted or recreated is seen at once all the same (its elements are
// loaded when it is created); elements deleted by hand come back within
// this time.
const countriesEvery = time.Minute

// countriesDue reports whether the country sets are to be read back now:
// after SetPolicy, and every countriesEvery.
func (ps *policyState) countriesDue(now time.Time) bool {
	return ps.country[0] != nil && (ps.countriesRead.IsZero() || now.Sub(ps.countriesRead) >= countriesEvery)
}

// countriesDiffer reports whether country4 or country6 holds other
// networks than the policy's (false when they were not read back).
func (n *NFT) countriesDiffer(st *kernelState) bool {
	if !st.countriesRead {
		return false
	}
	for i, s := range n.pol.country {
		if s != nil && !sameElements(st.allow[s.Name], n.pol.countryEls[i]) {
			return true
		}
	}
	return false
}

// sipPortsDiffer reports whether a SIP ports set holds other ports than
// the policy's.
func (n *NFT) sipPortsDiffer(st *kernelState) bool {
	for proto, s := range n.pol.sipSets {
		if !sameElements(st.ports[s.Name], n.pol.sipEls[proto]) {
			return true
		}
	}
	return false
}
