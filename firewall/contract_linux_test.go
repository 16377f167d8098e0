//go:build linux

package firewall_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/firewall/fwtest"
)

// TestBackendContract runs the same cases through the firewall.Backend
// interface against fwtest.Fake and against NFT in a network namespace of
// its own, and checks each against what the contract says and against the
// other: the same errors, the same bans listed after every step. For NFT
// the kernel's sets must hold what List says, so the Fake, which the
// daemon's tests trust, cannot drift from the kernel.
func TestBackendContract(t *testing.T) {
	for _, tc := range contractCases {
		t.Run(tc.name, func(t *testing.T) {
			fake := &contract{t: t, name: "fake", fw: &fwtest.Fake{Profiles: []string{gui(t)}}}
			tc.run(fake)
			ns := newNS(t) // skips without root
			n := newNFT(t, ns, firewall.NFTOptions{Profiles: [][]firewall.Port{parsePorts(t, "80/tcp")}})
			nft := &contract{t: t, name: "nft", fw: n, kernel: func() map[banKey]time.Duration { return kernelBans(t, ns, gui(t)) }}
			tc.run(nft)
			if !slices.Equal(fake.transcript, nft.transcript) {
				t.Errorf("the fake and the kernel differ:\nfake:\n  %s\nnft:\n  %s",
					strings.Join(fake.transcript, "\n  "), strings.Join(nft.transcript, "\n  "))
			}
			if slices.Contains(dryRunCases, tc.name) {
				dry := &contract{t: t, name: "dry-run", fw: firewall.NewDryRun(zerolog.Nop(), nil)}
				tc.run(dry)
				if !slices.Equal(dry.transcript, nft.transcript) {
					t.Errorf("the dry run and the kernel differ:\ndry-run:\n  %s\nnft:\n  %s",
						strings.Join(dry.transcript, "\n  "), strings.Join(nft.transcript, "\n  "))
				}
			}
		})
	}
}

// dryRunCases are the cases DryRun runs too, so that `sipguard run
// --dry-run` bans, lifts, restores and refuses what nftables would. It is
// set up with no ports profiles, so it takes them all.
var dryRunCases = []string{
	"ban and list", "reban sets the new timeout", "invalid bans change nothing", "unban", "bans expire",
	"overlapping networks are refused", "change lifts and bans in one", "change: addresses beside networks",
	"change: the widest networks, lifts normalised", "change across ports profiles",
	"sync holds exactly the entries", "closed",
}

var contractCases = []struct {
	name string
	run  func(c *contract)
}{
	{"ban and list", func(c *contract) {
		c.ban(nil, b("198.51.100.7", time.Hour), b("2001:db8::7", 2*time.Hour),
			b("203.0.113.0/24", 3*time.Hour), b("2001:db8:bad::/64", 4*time.Hour))
		// Normalised: an IPv4-mapped address is the IPv4 address, host
		// bits of a network are cleared.
		c.ban(nil, b("::ffff:192.0.2.9", time.Hour), b("198.18.7.9/16", time.Hour), b("2001:db8:beef::1/48", time.Hour))
		c.expect(e("198.51.100.7", time.Hour), e("2001:db8::7", 2*time.Hour), e("203.0.113.0/24", 3*time.Hour),
			e("2001:db8:bad::/64", 4*time.Hour), e("192.0.2.9", time.Hour), e("198.18.0.0/16", time.Hour), e("2001:db8:beef::/48", time.Hour))
		if st := c.fw.State(context.Background()); st.Bans != 7 {
			c.t.Errorf("%s: State counts %d bans; want 7", c.name, st.Bans)
		}
	}},
	{"reban sets the new timeout", func(c *contract) {
		c.ban(nil, b("198.51.100.7", time.Hour), b("203.0.113.0/24", time.Hour))
		c.ban(nil, b("198.51.100.7", 10*time.Minute), b("203.0.113.0/24", 5*time.Hour))
		c.expect(e("198.51.100.7", 10*time.Minute), e("203.0.113.0/24", 5*time.Hour))
		// In one call, the last one wins.
		c.ban(nil, b("198.51.100.8", time.Hour), b("198.51.100.8", 2*time.Hour))
		c.expect(e("198.51.100.7", 10*time.Minute), e("203.0.113.0/24", 5*time.Hour), e("198.51.100.8", 2*time.Hour))
	}},
	{"invalid bans change nothing", func(c *contract) {
		c.ban(nil, b("198.51.100.7", time.Hour))
		c.ban(firewall.ErrInvalidBan, b("198.51.100.8", time.Hour), b("198.51.100.9", 0))
		c.ban(firewall.ErrInvalidBan, b("198.51.100.8", time.Hour), b("198.51.100.9", -time.Second))
		c.ban(firewall.ErrInvalidBan, b("198.51.100.8", time.Hour), firewall.Ban{Timeout: time.Hour})
		c.expect(e("198.51.100.7", time.Hour))
	}},
	{"unban", func(c *contract) {
		c.ban(nil, b("198.51.100.7", time.Hour), b("198.51.100.8", time.Hour), b("2001:db8::7", time.Hour),
			b("203.0.113.0/24", time.Hour), b("2001:db8:bad::/64", time.Hour))
		c.unban(nil, p("198.51.100.7"), p("2001:db8:bad::/64"))
		c.expect(e("198.51.100.8", time.Hour), e("2001:db8::7", time.Hour), e("203.0.113.0/24", time.Hour))
		// Normalised; not banned, or lifted twice: ignored.
		c.unban(nil, p("::ffff:198.51.100.8"), p("203.0.113.77/24"), p("192.0.2.1"), p("198.51.100.7"), p("2001:db8::7"), p("2001:db8::7"))
		c.expect()
		c.unban(firewall.ErrInvalidBan, netip.Prefix{})
	}},
	{"bans expire", func(c *contract) {
		c.ban(nil, b("198.51.100.7", 300*time.Millisecond), b("203.0.113.0/24", 300*time.Millisecond),
			b("2001:db8::7", 300*time.Millisecond), b("198.51.100.8", time.Hour))
		deadline := time.Now().Add(10 * time.Second)
		for len(c.list()) > 1 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		c.expect(e("198.51.100.8", time.Hour))
		if c.kernel != nil {
			// The kernel lifts them itself, soon after.
			for len(c.kernel()) > 1 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
		}
		c.expect(e("198.51.100.8", time.Hour))
		// An expired network no longer overlaps.
		c.ban(nil, b("203.0.0.0/16", time.Hour))
		c.expect(e("198.51.100.8", time.Hour), e("203.0.0.0/16", time.Hour))
	}},
	{"overlapping networks are refused", func(c *contract) {
		c.ban(nil, b("10.0.0.0/16", time.Hour), b("2001:db8:bad::/48", time.Hour))
		c.ban(firewall.ErrOverlap, b("10.0.5.0/24", time.Hour))                                  // inside
		c.ban(firewall.ErrOverlap, b("10.0.0.0/8", time.Hour))                                   // around
		c.ban(firewall.ErrOverlap, b("2001:db8:bad:1::/64", time.Hour))                          // inside, IPv6
		c.ban(firewall.ErrOverlap, b("172.16.0.0/12", time.Hour), b("172.16.1.0/24", time.Hour)) // in one call
		c.ban(firewall.ErrOverlap, b("192.0.2.1", time.Hour), b("10.0.0.0/12", time.Hour))       // all or nothing
		c.expect(e("10.0.0.0/16", time.Hour), e("2001:db8:bad::/48", time.Hour))
		// A host inside a banned network, an adjacent network and a re-ban
		// of the same network are fine.
		c.ban(nil, b("10.0.0.1", time.Hour), b("10.1.0.0/16", time.Hour), b("10.0.0.0/16", 2*time.Hour), b("2001:db8:bad::1", time.Hour))
		c.expect(e("10.0.0.0/16", 2*time.Hour), e("2001:db8:bad::/48", time.Hour), e("10.0.0.1", time.Hour),
			e("10.1.0.0/16", time.Hour), e("2001:db8:bad::1", time.Hour))
	}},
	{"change lifts and bans in one", func(c *contract) {
		c.ban(nil, b("10.0.1.0/24", time.Hour), b("10.0.2.0/24", time.Hour), b("10.0.3.3", time.Hour), b("2001:db8:1::/64", time.Hour))
		// A wider network takes the place of the narrower ones inside it.
		c.change(nil, lifts("10.0.1.0/24", "10.0.2.0/24", "2001:db8:1::/64", "192.0.2.0/24"),
			b("10.0.0.0/16", 2*time.Hour), b("2001:db8:1::/48", 2*time.Hour))
		c.expect(e("10.0.0.0/16", 2*time.Hour), e("10.0.3.3", time.Hour), e("2001:db8:1::/48", 2*time.Hour))
		// Refused as a whole: a ban overlapping a network not lifted, or
		// another ban of the call, or invalid; nothing is lifted.
		c.change(firewall.ErrOverlap, lifts("10.0.3.3"), b("10.0.5.0/24", time.Hour))
		c.change(firewall.ErrOverlap, lifts("10.0.0.0/16"), b("10.0.5.0/24", time.Hour), b("10.0.5.0/25", time.Hour))
		c.change(firewall.ErrInvalidBan, lifts("10.0.0.0/16"), b("10.0.5.0/24", 0))
		c.expect(e("10.0.0.0/16", 2*time.Hour), e("10.0.3.3", time.Hour), e("2001:db8:1::/48", 2*time.Hour))
		// The narrower ones back in its place; a lift alone; a ban alone.
		c.change(nil, lifts("10.0.0.0/16"), b("10.0.5.0/24", 3*time.Hour), b("10.0.6.0/24", 3*time.Hour))
		c.change(nil, lifts("2001:db8:1::/48"))
		c.change(nil, nil, b("10.0.5.0/24", 4*time.Hour))
		c.expect(e("10.0.5.0/24", 4*time.Hour), e("10.0.6.0/24", 3*time.Hour), e("10.0.3.3", time.Hour))
		// Nothing to do, or lifts of targets not banned: done.
		c.change(nil, nil)
		c.change(nil, lifts("192.0.2.77", "192.0.2.0/24", "2001:db8:77::/48"))
		// The same target lifted and banned: the ban wins.
		c.change(nil, lifts("10.0.5.0/24", "10.0.3.3"), b("10.0.5.0/24", 5*time.Hour), b("10.0.3.3", 2*time.Hour))
		c.expect(e("10.0.5.0/24", 5*time.Hour), e("10.0.6.0/24", 3*time.Hour), e("10.0.3.3", 2*time.Hour))
	}},
	{"change: addresses beside networks", func(c *contract) {
		// Addresses never overlap networks: an address inside a network
		// lifted in the call, or a network around an address lifted in
		// it, is refreshed (a longer or shorter timeout) as any re-ban.
		c.ban(nil, b("10.0.0.0/16", time.Hour), b("10.0.3.3", time.Hour), b("2001:db8::/48", time.Hour), b("2001:db8::3", time.Hour))
		c.change(nil, lifts("10.0.0.0/16", "2001:db8::/48"), b("10.0.3.3", 2*time.Hour), b("2001:db8::3", 10*time.Minute))
		c.expect(e("10.0.3.3", 2*time.Hour), e("2001:db8::3", 10*time.Minute))
		c.ban(nil, b("10.0.0.0/16", 2*time.Hour), b("2001:db8::/48", 2*time.Hour))
		c.change(nil, lifts("10.0.3.3", "2001:db8::3"), b("10.0.0.0/16", 20*time.Minute), b("2001:db8::/48", 3*time.Hour))
		c.expect(e("10.0.0.0/16", 20*time.Minute), e("2001:db8::/48", 3*time.Hour))
	}},
	{"change: the widest networks, lifts normalised", func(c *contract) {
		c.ban(nil, b("10.0.0.0/8", time.Hour), b("2001:db8::/32", time.Hour), b("198.51.100.7", time.Hour), b("2001:db8::7", time.Hour))
		// An IPv4-mapped network is the IPv4 network; host bits are
		// cleared: these lifts are of 10.0.0.0/8 and 2001:db8::/32.
		c.change(nil, lifts("::ffff:10.0.0.0/104", "2001:db8::1/32"), b("0.0.0.0/0", time.Hour), b("::/0", 2*time.Hour))
		c.expect(e("0.0.0.0/0", time.Hour), e("::/0", 2*time.Hour), e("198.51.100.7", time.Hour), e("2001:db8::7", time.Hour))
		c.ban(firewall.ErrOverlap, b("255.255.255.0/24", time.Hour))
		c.ban(firewall.ErrOverlap, b("ffff::/16", time.Hour))
		c.change(nil, lifts("::ffff:0.0.0.0/96", "::/0"), b("255.255.255.0/24", time.Hour), b("ffff::/16", time.Hour), b("::/1", time.Hour))
		c.expect(e("255.255.255.0/24", time.Hour), e("ffff::/16", time.Hour), e("::/1", time.Hour), e("198.51.100.7", time.Hour), e("2001:db8::7", time.Hour))
	}},
	{"change across ports profiles", func(c *contract) {
		g := gui(c.t)
		c.ban(nil, b("10.0.0.0/16", time.Hour), bin(g, "10.0.0.0/16", time.Hour), b("198.51.100.7", time.Hour), bin(g, "198.51.100.7", time.Hour))
		// A network lifted in one profile still overlaps in another:
		// refused, nothing lifted.
		c.change(firewall.ErrOverlap, liftsIn(g, "10.0.0.0/16"), b("10.0.0.0/8", 2*time.Hour))
		c.change(firewall.ErrOverlap, lifts("10.0.0.0/16"), bin(g, "10.0.0.0/8", 2*time.Hour))
		c.expect(e("10.0.0.0/16", time.Hour), ein(g, "10.0.0.0/16", time.Hour), e("198.51.100.7", time.Hour), ein(g, "198.51.100.7", time.Hour))
		// In its own profile it takes the other's place; a target lifted
		// in two profiles and banned again in one of them is banned there.
		c.change(nil, liftsIn(g, "10.0.0.0/16"), bin(g, "10.0.0.0/8", 2*time.Hour))
		c.change(nil, append(lifts("198.51.100.7"), liftsIn(g, "198.51.100.7")...), bin(g, "198.51.100.7", 30*time.Minute))
		c.expect(e("10.0.0.0/16", time.Hour), ein(g, "10.0.0.0/8", 2*time.Hour), ein(g, "198.51.100.7", 30*time.Minute))
	}},
	{"unknown ports profiles", func(c *contract) {
		g := gui(c.t)
		c.ban(nil, b("198.51.100.7", time.Hour), bin(g, "10.0.0.0/16", time.Hour))
		// A lift or a ban in a profile the backend was not set up with
		// fails the whole call: nothing lifted, nothing banned.
		c.change(firewall.ErrUnknownPorts, liftsIn("22/tcp", "198.51.100.7"), b("198.51.100.8", time.Hour))
		c.change(firewall.ErrUnknownPorts, append(lifts("198.51.100.7"), liftsIn(g, "10.0.0.0/16")...), bin("22/tcp", "198.51.100.8", time.Hour))
		c.expect(e("198.51.100.7", time.Hour), ein(g, "10.0.0.0/16", time.Hour))
		if err := c.fw.UnbanIn(context.Background(), "22/tcp", p("198.51.100.7")); !errors.Is(err, firewall.ErrUnknownPorts) {
			c.t.Errorf("%s: UnbanIn of a profile not set up: %v; want ErrUnknownPorts", c.name, err)
		}
		// Sync loads the rest and reports them.
		now := time.Now()
		c.sync(firewall.ErrUnknownPorts,
			firewall.Entry{Prefix: p("198.51.100.9"), Expires: now.Add(time.Hour), Ports: "22/tcp"},
			firewall.Entry{Prefix: p("198.51.100.7"), Expires: now.Add(2 * time.Hour)},
			firewall.Entry{Prefix: p("10.0.0.0/8"), Expires: now.Add(time.Hour), Ports: g},
		)
		c.expect(e("198.51.100.7", 2*time.Hour), ein(g, "10.0.0.0/8", time.Hour))
	}},
	{"sync holds exactly the entries", func(c *contract) {
		c.ban(nil, b("198.51.100.7", time.Hour), b("203.0.113.0/24", time.Hour), b("2001:db8::7", time.Hour))
		now := time.Now()
		c.sync(nil,
			firewall.Entry{Prefix: p("198.51.100.7"), Expires: now.Add(2 * time.Hour)},      // kept, new expiry
			firewall.Entry{Prefix: p("198.51.100.9"), Expires: now.Add(3 * time.Hour)},      // added
			firewall.Entry{Prefix: p("198.51.100.10"), Expires: now.Add(-time.Second)},      // expired: skipped
			firewall.Entry{Prefix: p("2001:db8:bad::/64"), Expires: now.Add(4 * time.Hour)}, // added
			firewall.Entry{Prefix: p("::ffff:192.0.2.9"), Expires: now.Add(time.Hour)},      // normalised
			firewall.Entry{Prefix: p("192.0.2.9"), Expires: now.Add(5 * time.Hour)},         // twice: the later
		)
		c.expect(e("198.51.100.7", 2*time.Hour), e("198.51.100.9", 3*time.Hour), e("2001:db8:bad::/64", 4*time.Hour), e("192.0.2.9", 5*time.Hour))
		// Overlapping networks: the wider is kept, the rest loaded, the
		// others reported.
		c.sync(firewall.ErrOverlap,
			firewall.Entry{Prefix: p("198.51.100.1"), Expires: now.Add(time.Hour)},
			firewall.Entry{Prefix: p("10.1.0.0/16"), Expires: now.Add(time.Hour)},
			firewall.Entry{Prefix: p("10.0.0.0/8"), Expires: now.Add(time.Hour)},
			firewall.Entry{Prefix: p("2001:db8:bad:1::/64"), Expires: now.Add(time.Hour)},
			firewall.Entry{Prefix: p("2001:db8:bad::/48"), Expires: now.Add(time.Hour)},
		)
		c.expect(e("198.51.100.1", time.Hour), e("10.0.0.0/8", time.Hour), e("2001:db8:bad::/48", time.Hour))
		c.sync(nil)
		c.expect()
	}},
	{"closed", func(c *contract) {
		c.ban(nil, b("198.51.100.7", time.Hour))
		if err := c.fw.Close(); err != nil {
			c.t.Fatalf("%s: Close: %v", c.name, err)
		}
		c.ban(firewall.ErrClosed, b("198.51.100.8", time.Hour))
		c.ban(firewall.ErrClosed)
		c.change(firewall.ErrClosed, lifts("198.51.100.7"))
		c.change(firewall.ErrClosed, nil, b("198.51.100.8", 0))
		c.unban(firewall.ErrClosed, p("198.51.100.7"))
		c.sync(firewall.ErrClosed)
		if _, err := c.fw.List(context.Background()); !errors.Is(err, firewall.ErrClosed) {
			c.t.Errorf("%s: List after Close: %v; want ErrClosed", c.name, err)
		}
		if err := c.fw.SetAllow(context.Background(), nil); !errors.Is(err, firewall.ErrClosed) {
			c.t.Errorf("%s: SetAllow after Close: %v; want ErrClosed", c.name, err)
		}
		c.fw.State(context.Background()) // answers
		if c.kernel != nil {
			// The bans stay in force in the kernel.
			if k := c.kernel(); len(k) != 1 {
				c.t.Errorf("%s: the kernel holds %v after Close; want 198.51.100.7", c.name, k)
			}
		}
	}},
}

// gui returns the key of the ports profile the contract's NFT has beside
// the default: 80/tcp.
func gui(t testing.TB) string { return portsKey(t, parsePorts(t, "80/tcp")) }

// contract drives one backend through a case: each step checks what the
// contract says and is written to the transcript compared across
// backends.
type contract struct {
	t          *testing.T
	name       string
	fw         firewall.Backend
	kernel     func() map[banKey]time.Duration // nil: no kernel
	transcript []string
}

func b(s string, d time.Duration) firewall.Ban { return firewall.Ban{Prefix: pfx(s), Timeout: d} }

// bin is b in the ports profile ports.
func bin(ports, s string, d time.Duration) firewall.Ban {
	return firewall.Ban{Prefix: pfx(s), Timeout: d, Ports: ports}
}

func p(s string) netip.Prefix { return pfx(s) }

// banKey is a ban in force: its ports profile and prefix.
type banKey struct {
	ports  string
	prefix netip.Prefix
}

func (k banKey) String() string {
	if k.ports == "" {
		return k.prefix.String()
	}
	return k.prefix.String() + " " + k.ports
}

// want is a ban expected in force, with its timeout as banned.
type want struct {
	banKey
	timeout time.Duration
}

func e(s string, d time.Duration) want { return want{banKey{"", pfx(s)}, d} }

// ein is e in the ports profile ports.
func ein(ports, s string, d time.Duration) want { return want{banKey{ports, pfx(s)}, d} }

func (c *contract) ban(wantErr error, bans ...firewall.Ban) {
	c.t.Helper()
	c.step(fmt.Sprintf("Ban %v", bans), wantErr, c.fw.Ban(context.Background(), bans...))
}

func (c *contract) change(wantErr error, lift []firewall.Lift, bans ...firewall.Ban) {
	c.t.Helper()
	c.step(fmt.Sprintf("Change %v %v", lift, bans), wantErr, c.fw.Change(context.Background(), lift, bans...))
}

// liftsIn are lifts of targets in the ports profile ports.
func liftsIn(ports string, targets ...string) []firewall.Lift {
	out := lifts(targets...)
	for i := range out {
		out[i].Ports = ports
	}
	return out
}

// lifts are lifts of targets in the default ports profile.
func lifts(targets ...string) []firewall.Lift {
	var out []firewall.Lift
	for _, s := range targets {
		out = append(out, firewall.Lift{Prefix: pfx(s)})
	}
	return out
}

func (c *contract) unban(wantErr error, prefixes ...netip.Prefix) {
	c.t.Helper()
	c.step(fmt.Sprintf("Unban %v", prefixes), wantErr, c.fw.Unban(context.Background(), prefixes...))
}

func (c *contract) sync(wantErr error, entries ...firewall.Entry) {
	c.t.Helper()
	c.step(fmt.Sprintf("Sync %d entries", len(entries)), wantErr, c.fw.Sync(context.Background(), entries))
}

// step checks a call's error against wantErr (nil: none) and writes both
// to the transcript.
func (c *contract) step(call string, wantErr, err error) {
	c.t.Helper()
	if (wantErr == nil) != (err == nil) || (wantErr != nil && !errors.Is(err, wantErr)) {
		c.t.Errorf("%s: %s: error %v; want %v", c.name, call, err, wantErr)
	}
	c.transcript = append(c.transcript, fmt.Sprintf("%s: %s", call, errClass(err)))
}

// errClass names an error by the contract's sentinels, which is what is
// compared across backends (their texts may differ).
func errClass(err error) string {
	for _, s := range []error{firewall.ErrInvalidBan, firewall.ErrOverlap, firewall.ErrClosed, firewall.ErrUnknownPorts} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	if err != nil {
		return "other error"
	}
	return "ok"
}

// list returns the bans List reports, by profile and prefix, with their
// time left.
func (c *contract) list() map[banKey]time.Duration {
	c.t.Helper()
	es, err := c.fw.List(context.Background())
	if err != nil {
		c.t.Fatalf("%s: List: %v", c.name, err)
	}
	now := time.Now()
	out := map[banKey]time.Duration{}
	for _, e := range es {
		k := banKey{e.Ports, e.Prefix}
		if _, dup := out[k]; dup {
			c.t.Errorf("%s: List has %s twice", c.name, k)
		}
		out[k] = e.Expires.Sub(now)
	}
	return out
}

// expect checks that List, and the kernel for NFT, hold exactly ws, each
// with about its timeout left (a few seconds of margin for a loaded
// machine), and writes the prefixes to the transcript.
func (c *contract) expect(ws ...want) {
	c.t.Helper()
	views := map[string]map[banKey]time.Duration{"List": c.list()}
	if c.kernel != nil {
		views["the kernel"] = c.kernel()
	}
	for view, got := range views {
		for _, w := range ws {
			left, ok := got[w.banKey]
			if !ok {
				c.t.Errorf("%s: %s lacks %s: %v", c.name, view, w.banKey, got)
				continue
			}
			if left > w.timeout || left < w.timeout-5*time.Second {
				c.t.Errorf("%s: %s: %s has %v left; want about %v", c.name, view, w.banKey, left, w.timeout)
			}
		}
		for q := range got {
			if !slices.ContainsFunc(ws, func(w want) bool { return w.banKey == q }) {
				c.t.Errorf("%s: %s has %s, not banned", c.name, view, q)
			}
		}
	}
	var ps []string
	for _, w := range ws {
		ps = append(ps, w.banKey.String())
	}
	slices.Sort(ps)
	c.transcript = append(c.transcript, "in force: "+strings.Join(ps, " "))
}

// kernelBans reads the elements of every ban set of the sipguard table
// (ban... and net...) with their time left, the way nft lists them,
// each in its ports profile: the default or one of profiles (by the
// suffix of its set's name).
func kernelBans(t *testing.T, ns string, profiles ...string) map[banKey]time.Duration {
	t.Helper()
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(nft(t, ns, "-j", "list", "table", "inet", "sipguard")), &doc); err != nil {
		t.Fatalf("parse nft -j list table: %v", err)
	}
	out := map[banKey]time.Duration{}
	for _, o := range doc.Nftables {
		raw, ok := o["set"]
		if !ok {
			continue
		}
		var set struct {
			Name string
			Elem []json.RawMessage
		}
		if err := json.Unmarshal(raw, &set); err != nil {
			t.Fatalf("parse set %s: %v", raw, err)
		}
		if !strings.HasPrefix(set.Name, "ban") && !strings.HasPrefix(set.Name, "net") {
			continue // allow and port sets
		}
		ports := ""
		for _, key := range profiles {
			if strings.HasSuffix(set.Name, firewall.ProfileSuffix(key)) {
				ports = key
			}
		}
		for _, el := range set.Elem {
			el := parseElem(t, el)
			k := banKey{ports, el.Prefix}
			if _, dup := out[k]; dup {
				t.Errorf("the kernel holds %s twice", k)
			}
			out[k] = el.Expires
		}
	}
	return out
}
