//go:build linux

package firewall

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"regexp"
	"sync"
	"time"

	"github.com/google/nftables"
)

// profile is one list of ports that bans drop traffic to, with its own
// ban sets, port sets and drops. The default profile (key "", the ports
// of NFTOptions.Ports) has the set names of the contract (ban4, ...,
// tcp_ports), so a table made before profiles existed is the same; each
// other profile's names end in "_r" and the FNV-32a hash of its key
// ("ban4_rf5b78040" for "80/tcp,443/tcp"), stable across restarts and
// within the kernel's limits on set names.
type profile struct {
	idx      int                              // index in NFT.profiles: 0 is the default
	key      string                           // PortsKey of its ports; "" for the default
	suffix   string                           // of its set names: "" for the default
	sets     [4]*nftables.Set                 // indexed by setKind
	ports    map[string][]nftables.SetElement // protocol → the port set's elements, sorted
	portSets map[string]*nftables.Set         // protocol → set
	// bans and nets are the bans in memory: prefix → expiry.
	bans, nets map[netip.Prefix]time.Time
}

// setRef names a ban set: its profile and kind.
type setRef struct {
	pr   *profile
	kind setKind
}

// profileSuffix returns the set name suffix of a profile's key.
func profileSuffix(key string) string {
	if key == "" {
		return ""
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return fmt.Sprintf("_r%08x", h.Sum32())
}

// ourSetName matches the names of the ban and port sets of any profile:
// a set of the table that no profile wants any more is deleted.
// Compiled when first needed, not at every start of every command.
var ourSetName = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(ban4|ban6|net4|net6|tcp_ports|udp_ports)(_r[0-9a-f]{8})?$`)
})

// newProfile returns profile idx of table t for ports (key is their
// PortsKey). Set IDs, unique within a transaction, are 1-4 (ban sets), 5-6
// (port sets) for the default, 7-8 for the allow sets, and from 9 up six
// per other profile.
func newProfile(t *nftables.Table, idx int, key string, ports []Port) (*profile, error) {
	pr := &profile{
		idx: idx, key: key, suffix: profileSuffix(key),
		ports:    map[string][]nftables.SetElement{},
		portSets: map[string]*nftables.Set{},
		bans:     map[netip.Prefix]time.Time{},
		nets:     map[netip.Prefix]time.Time{},
	}
	ranges, err := portRanges(ports)
	if err != nil {
		return nil, err
	}
	for proto, rs := range ranges {
		pr.ports[proto] = portElements(rs)
	}
	base := uint32(0)
	if idx > 0 {
		base = uint32(8 + 6*(idx-1))
	}
	for k, name := range setNames {
		pr.sets[k] = &nftables.Set{
			Table: t, Name: name + pr.suffix, ID: base + uint32(k+1), HasTimeout: true,
			KeyType: nftables.TypeIPAddr, Interval: k >= int(kindNet4),
		}
		if k == int(kindBan6) || k == int(kindNet6) {
			pr.sets[k].KeyType = nftables.TypeIP6Addr
		}
	}
	for i, proto := range []string{"tcp", "udp"} {
		if len(pr.ports[proto]) > 0 {
			pr.portSets[proto] = &nftables.Set{Table: t, Name: proto + "_ports" + pr.suffix, ID: base + uint32(5+i), KeyType: nftables.TypeInetService, Interval: true}
		}
	}
	return pr, nil
}

func (pr *profile) mapFor(p netip.Prefix) map[netip.Prefix]time.Time {
	if isHost(p) {
		return pr.bans
	}
	return pr.nets
}

// lookup returns p's expiry if p is in memory, expired or not.
func (pr *profile) lookup(p netip.Prefix) (time.Time, bool) {
	exp, ok := pr.mapFor(p)[p]
	return exp, ok
}

// maps returns the profile's two maps of bans.
func (pr *profile) maps() [2]map[netip.Prefix]time.Time {
	return [2]map[netip.Prefix]time.Time{pr.bans, pr.nets}
}

// profileOf returns the profile named by a ban's Ports.
func (n *NFT) profileOf(key string) (*profile, error) {
	if pr, ok := n.byKey[key]; ok {
		return pr, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownPorts, key)
}

// setupProfiles makes the default profile of ports and one per other list
// of profiles (the lists with the default's key are the default).
func (n *NFT) setupProfiles(ports []Port, profiles [][]Port) error {
	defKey, err := PortsKey(ports)
	if err != nil {
		return err
	}
	def, err := newProfile(n.table, 0, "", ports)
	if err != nil {
		return err
	}
	n.profiles = []*profile{def}
	n.byKey = map[string]*profile{"": def, defKey: def}
	n.setIndex = map[string]setRef{}
	for _, ps := range profiles {
		key, err := PortsKey(ps)
		if err != nil {
			return err
		}
		if key == "" {
			return fmt.Errorf("a ports profile needs at least one port")
		}
		if _, ok := n.byKey[key]; ok {
			continue
		}
		pr, err := newProfile(n.table, len(n.profiles), key, ps)
		if err != nil {
			return err
		}
		n.profiles = append(n.profiles, pr)
		n.byKey[key] = pr
	}
	for _, pr := range n.profiles {
		for k, s := range pr.sets {
			n.setIndex[s.Name] = setRef{pr, setKind(k)}
		}
	}
	return nil
}
