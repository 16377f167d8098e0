//go:build linux

package firewall

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// The wire sensor's chains (NFTOptions.Wire), one per hook asked for:
//
//	chain wire_output  { type filter hook output priority -10; policy accept; }
//	chain wire_forward { type filter hook forward priority -10; policy accept; }
//
// Each holds log rules only, no verdict, so they change the fate of no
// packet: if sipguard stops reading the group, the kernel drops the copies
// and the traffic goes on (fail open). For 5060/udp and 5060/tcp on the
// output hook, nft lists them as
//
//	udp sport 5060 @ih,0,64 0x5349502f322e3020 @ih,64,8 0x32 counter log group 5160 snaplen 4096 queue-threshold 1 comment "sipguard wire udp 2xx #..."
//	udp sport 5060 @ih,0,64 0x5349502f322e3020 @ih,64,8 0x34 counter log group 5160 snaplen 4096 queue-threshold 1 comment "sipguard wire udp 4xx #..."
//	tcp sport 5060 @ih,0,64 0x5349502f322e3020 counter log group 5160 snaplen 4096 queue-threshold 1 comment "sipguard wire tcp #..."
//
// ("SIP/2.0 " then the status's first digit: 2xx for auth_succeeded, 4xx
// for the failures; 1xx, 3xx, 5xx and 6xx are not copied). On the forward
// hook each rule also matches `ip saddr` or `ip6 saddr` in the PBX
// addresses (one rule per family present). The ports and addresses are
// anonymous sets bound to their rule. The comment ends in a hash of the
// whole Wire, so that a change of ports, addresses or group rewrites the
// rules.
//
// The inner header (@ih) starts after the transport header, whatever its
// length: after the 8 bytes of UDP, after the data offset of TCP (options
// included). What the kernel cannot match: a TCP segment that does not
// begin with a response (the tail of a response split across segments, a
// response that follows the end of another in the same segment) is not
// copied; a second response in a copied segment is (the reader splits
// them). Non-first IP fragments carry no transport header and are not
// copied (the output hook sees packets before fragmentation; a router
// reassembles with conntrack loaded). TLS and WebSocket SIP are
// encrypted or framed: invisible here.
const wirePrefix = "wire_"

// sipVersion is what every response starts with.
var sipVersion = []byte("SIP/2.0 ")

// wireSetID numbers the anonymous sets of the wire rules, far from the
// IDs of the named sets (ID only needs to be unique in a transaction).
const wireSetID = 1 << 24

// wireChain returns the chain of the wire sensor on hook.
func (n *NFT) wireChain(hook string) *nftables.Chain {
	accept := nftables.ChainPolicyAccept
	num := nftables.ChainHookOutput
	if hook == "forward" {
		num = nftables.ChainHookForward
	}
	return &nftables.Chain{
		Name: wirePrefix + hook, Table: n.table, Type: nftables.ChainTypeFilter,
		Hooknum: num, Priority: nftables.ChainPriorityRef(chainPriority), Policy: &accept,
	}
}

// wireRule is a rule of a wire chain and the anonymous sets it uses.
type wireRule struct {
	ruleSpec
	sets []wireSet
}

type wireSet struct {
	set   *nftables.Set
	elems []nftables.SetElement
}

// wireRules returns the rules of the chain on hook.
func (n *NFT) wireRules(hook string) []wireRule {
	w := n.wire
	sum := fnv.New32a()
	fmt.Fprint(sum, w.Hooks, w.PBX, w.Ports, w.Group, n.snaplen())
	hash := fmt.Sprintf("#%08x", sum.Sum32())
	ranges, _ := portRanges(w.Ports) // checked by NewNFT
	pbx, _ := allowElements(w.PBX)   // checked by NewNFT
	// The families of the PBX addresses (0 IPv4, 1 IPv6), or -1 for any
	// source (the output hook: this host's responses).
	var families []int
	if hook == "forward" {
		for i := range pbx {
			if len(pbx[i]) > 0 {
				families = append(families, i)
			}
		}
	} else {
		families = []int{-1}
	}
	// The IDs name the sets within one transaction, which may set up the
	// chains of both hooks: each hook numbers its own range. (Linux 6.1
	// refuses, EBUSY, a second rule bound to one anonymous set, which a
	// lookup by a repeated ID makes; later kernels let it pass.)
	id := uint32(wireSetID)
	if hook == "forward" {
		id += 1 << 16
	}
	newSet := func(key nftables.SetDatatype, elems []nftables.SetElement) wireSet {
		id++
		return wireSet{
			set:   &nftables.Set{Table: n.table, Name: "__set%d", ID: id, Anonymous: true, Constant: true, Interval: true, KeyType: key},
			elems: elems,
		}
	}
	var out []wireRule
	for _, fam := range families {
		for _, proto := range []string{"udp", "tcp"} {
			if len(ranges[proto]) == 0 {
				continue
			}
			statuses := []string{""}
			if proto == "udp" {
				statuses = []string{"2", "4"}
			}
			for _, status := range statuses {
				var r wireRule
				tag := rulePrefix + "wire " + proto
				if status != "" {
					tag += " " + status + "xx"
				}
				if fam >= 0 {
					nfproto, off, size, key := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4), nftables.TypeIPAddr
					tag += " ip"
					if fam == 1 {
						nfproto, off, size, key = unix.NFPROTO_IPV6, 8, 16, nftables.TypeIP6Addr
						tag += "6"
					}
					s := newSet(key, pbx[fam])
					r.sets = append(r.sets, s)
					r.exprs = append(r.exprs,
						&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
						&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
						&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: size},
						&expr.Lookup{SourceRegister: 1, SetName: s.set.Name, SetID: s.set.ID},
					)
				}
				l4 := byte(unix.IPPROTO_UDP)
				if proto == "tcp" {
					l4 = unix.IPPROTO_TCP
				}
				ports := newSet(nftables.TypeInetService, portElements(ranges[proto]))
				r.sets = append(r.sets, ports)
				r.exprs = append(r.exprs,
					&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{l4}},
					// The source port: responses leave from the PBX's port.
					&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
					&expr.Lookup{SourceRegister: 1, SetName: ports.set.Name, SetID: ports.set.ID},
					&expr.Payload{DestRegister: 1, Base: payloadBaseInner, Offset: 0, Len: uint32(len(sipVersion))},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: sipVersion},
				)
				if status != "" {
					r.exprs = append(r.exprs,
						&expr.Payload{DestRegister: 1, Base: payloadBaseInner, Offset: uint32(len(sipVersion)), Len: 1},
						&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(status)},
					)
				}
				r.exprs = append(r.exprs,
					&expr.Counter{},
					&expr.Log{
						Key:     1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_SNAPLEN | 1<<unix.NFTA_LOG_QTHRESHOLD,
						Group:   w.Group,
						Snaplen: n.snaplen(),
						// Per packet: the kernel's default batches about a
						// second, which delays every ban.
						QThreshold: 1,
					},
				)
				r.tag = tag + " " + hash
				out = append(out, r)
			}
		}
	}
	return out
}

// payloadBaseInner is NFT_PAYLOAD_INNER_HEADER (nft's @ih): the bytes
// after the transport header, whose length the kernel reads (TCP's data
// offset). google/nftables v0.3.0 names only the first three bases.
const payloadBaseInner expr.PayloadBase = unix.NFT_PAYLOAD_TRANSPORT_HEADER + 1

func (n *NFT) snaplen() uint32 {
	if n.wire == nil || n.wire.Snaplen == 0 {
		return DefaultWireSnaplen
	}
	return n.wire.Snaplen
}

// wireHooksWanted returns the hooks of the wire chains to have.
func (n *NFT) wireHooksWanted() []string {
	if n.wire == nil {
		return nil
	}
	return n.wire.Hooks
}

// wirePlan is what ensureLocked must do to the wire chains.
type wirePlan struct {
	fixes   []string
	drop    []string // chains to delete
	rewrite []string // hooks whose chain is (re)created with its rules
}

// planWire compares the wire chains in the kernel (st) with the contract;
// it reads their rules. Called with mu held.
func (n *NFT) planWire(st *kernelState) (wirePlan, error) {
	var p wirePlan
	want := n.wireHooksWanted()
	for name, have := range st.chains {
		hook, ok := strings.CutPrefix(name, wirePrefix)
		if !ok || !slices.Contains(wireHooks, hook) {
			continue
		}
		if !slices.Contains(want, hook) {
			p.drop = append(p.drop, name)
			p.fixes = append(p.fixes, "delete chain "+name)
			continue
		}
		wc := n.wireChain(hook)
		if have.Type != wc.Type || have.Hooknum == nil || *have.Hooknum != *wc.Hooknum ||
			have.Priority == nil || *have.Priority != *wc.Priority ||
			have.Policy == nil || *have.Policy != nftables.ChainPolicyAccept {
			p.drop = append(p.drop, name)
			p.rewrite = append(p.rewrite, hook)
			p.fixes = append(p.fixes, "chain "+name)
			continue
		}
		var rules []*nftables.Rule
		if err := n.talk(func(c *nftables.Conn) (err error) { rules, err = c.GetRules(n.table, have); return err }); err != nil {
			return p, fmt.Errorf("get rules of chain %s: %w", name, err)
		}
		if !sameWireRules(rules, n.wireRules(hook)) {
			p.drop = append(p.drop, name)
			p.rewrite = append(p.rewrite, hook)
			p.fixes = append(p.fixes, "rules of chain "+name)
		}
	}
	for _, hook := range want {
		if _, ok := st.chains[wirePrefix+hook]; !ok {
			p.rewrite = append(p.rewrite, hook)
			if st.table {
				p.fixes = append(p.fixes, "chain "+wirePrefix+hook)
			}
		}
	}
	slices.Sort(p.drop)
	slices.Sort(p.rewrite)
	return p, nil
}

// apply queues the plan on c: chains whose rules differ are deleted and
// made again, so their anonymous sets go with their rules.
func (p wirePlan) apply(n *NFT, c *nftables.Conn) error {
	for _, name := range p.drop {
		ch := &nftables.Chain{Name: name, Table: n.table}
		c.FlushChain(ch)
		c.DelChain(ch)
	}
	for _, hook := range p.rewrite {
		ch := c.AddChain(n.wireChain(hook))
		for _, r := range n.wireRules(hook) {
			for _, s := range r.sets {
				if err := c.AddSet(s.set, s.elems); err != nil {
					return fmt.Errorf("add the ports or addresses of rule %q: %w", r.tag, err)
				}
			}
			c.AddRule(&nftables.Rule{
				Table: n.table, Chain: ch, Exprs: r.exprs,
				UserData: userdata.AppendString(nil, userdata.TypeComment, r.tag),
			})
		}
	}
	return nil
}

func sameWireRules(have []*nftables.Rule, want []wireRule) bool {
	specs := make([]ruleSpec, len(want))
	for i, r := range want {
		specs[i] = r.ruleSpec
	}
	return sameRules(have, specs)
}

// wireCopied sums the counters of the wire rules: the responses the
// kernel copied to the NFLOG group. Called with mu held.
func (n *NFT) wireCopied() (uint64, error) {
	var total uint64
	for _, hook := range n.wireHooksWanted() {
		var rules []*nftables.Rule
		err := n.talk(func(c *nftables.Conn) (err error) {
			rules, err = c.GetRules(n.table, &nftables.Chain{Name: wirePrefix + hook, Table: n.table})
			return err
		})
		if err != nil {
			return total, fmt.Errorf("read counters of chain %s%s: %w", wirePrefix, hook, err)
		}
		for _, r := range rules {
			for _, e := range r.Exprs {
				if c, ok := e.(*expr.Counter); ok && isOurRule(r) {
					total += c.Packets
				}
			}
		}
	}
	return total, nil
}
