// Package logmix generates a deterministic Asterisk log mix for benchmarks
// and comparisons: failures from a Zipf-weighted pool of attackers, drowned
// in realistic VERBOSE and benign NOTICE noise. It follows the 1M-line mix
// described in the project's reference (anchors.md §5), so sipguard and
// fail2ban-regex can be measured on the same file.
package logmix

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/netip"
	"sort"
	"time"
)

// Mix selects the share of failure lines.
type Mix int

// Mixes.
const (
	Default  Mix = iota // 20% failures, 80% noise
	Failures            // every line a failure
	Noise               // no failure at all
)

// ParseMix reads a Mix name: "default", "failures" or "noise".
func ParseMix(s string) (Mix, error) {
	switch s {
	case "default":
		return Default, nil
	case "failures":
		return Failures, nil
	case "noise":
		return Noise, nil
	}
	return 0, fmt.Errorf("unknown mix %q (default, failures, noise)", s)
}

// Options configure Generate.
type Options struct {
	Lines int
	Seed  uint64
	Mix   Mix
	// Start is the time of the first line; lines are spread evenly over
	// one day from it. Zero means 2026-11-26 00:00:00 UTC.
	Start time.Time
}

// Truth is what a generated file contains: the ground truth a scanner's
// output is checked against.
type Truth struct {
	Lines       int `json:"lines"`
	Failures    int `json:"failures"`
	ChanSIP     int `json:"chan_sip"`
	PJSIP       int `json:"pjsip"`
	IPv6        int `json:"ipv6_failures"`
	Verbose     int `json:"verbose"`
	Benign      int `json:"benign_notice"`
	Attackers   int `json:"distinct_attackers"`
	Bytes       int `json:"bytes"`
	attackerSet map[netip.Addr]bool
}

const server = "198.51.100.10"

var (
	users   = []string{"100", "101", "1000", "1001", "2000", "admin", "test", "200", "999", "6001", "asterisk", "sip", "user", "0000", "1234", "5000", "102"}
	apps    = []string{"Dial", "Set", "GotoIf", "Macro", "NoOp", "ExecIf", "Gosub", "Answer", "Playback", "Hangup"}
	context = []string{"from-internal", "macro-dial-one", "from-pstn", "ext-local", "sub-record-check", "macro-user-callerid", "from-trunk"}
)

// pool is a set of attacker addresses with Zipf-like weights.
type pool struct {
	addrs []netip.Addr
	cdf   []float64
}

func newPool(addrs []netip.Addr) *pool {
	p := &pool{addrs: addrs, cdf: make([]float64, len(addrs))}
	total := 0.0
	for i := range addrs {
		total += 1 / math.Pow(float64(i+1), 0.9)
		p.cdf[i] = total
	}
	for i := range p.cdf {
		p.cdf[i] /= total
	}
	return p
}

func (p *pool) pick(r *rand.Rand) netip.Addr {
	return p.addrs[sort.SearchFloat64s(p.cdf, r.Float64())]
}

// Generate writes opts.Lines lines to w.
func Generate(w io.Writer, opts Options) (Truth, error) {
	r := rand.New(rand.NewPCG(opts.Seed, 0x5195a4d))
	start := opts.Start
	if start.IsZero() {
		start = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	}
	v4, v6 := attackers(r)
	bw := bufio.NewWriterSize(w, 256<<10)
	g := &gen{r: r, w: bw, v4: newPool(v4), v6: newPool(v6), truth: Truth{attackerSet: map[netip.Addr]bool{}}}
	var stamp []byte
	lastSec := -1
	for i := range opts.Lines {
		sec := int(int64(i) * 86400 / int64(max(opts.Lines, 1)))
		if sec != lastSec {
			stamp = start.Add(time.Duration(sec)*time.Second).AppendFormat(stamp[:0], "[2006-01-02 15:04:05] ")
			lastSec = sec
		}
		g.buf = append(g.buf[:0], stamp...)
		fail := opts.Mix == Failures || opts.Mix == Default && r.Float64() < 0.20
		if fail {
			g.failure()
		} else {
			g.noise()
		}
		g.buf = append(g.buf, '\n')
		g.truth.Bytes += len(g.buf)
		if _, err := bw.Write(g.buf); err != nil {
			return g.truth, err
		}
	}
	g.truth.Lines = opts.Lines
	g.truth.Attackers = len(g.truth.attackerSet)
	return g.truth, bw.Flush()
}

type gen struct {
	r      *rand.Rand
	w      *bufio.Writer
	v4, v6 *pool
	buf    []byte
	truth  Truth
}

// attackers returns the pools: 19,600 public IPv4 and 400 IPv6 addresses.
func attackers(r *rand.Rand) (v4, v6 []netip.Addr) {
	seen := map[netip.Addr]bool{}
	excluded := map[int]bool{10: true, 100: true, 127: true, 169: true, 172: true, 192: true, 198: true, 203: true}
	for len(v4) < 19600 {
		first := 1 + r.IntN(223)
		if excluded[first] {
			continue
		}
		a := netip.AddrFrom4([4]byte{byte(first), byte(r.IntN(256)), byte(r.IntN(256)), byte(1 + r.IntN(254))})
		if !seen[a] {
			seen[a] = true
			v4 = append(v4, a)
		}
	}
	for len(v6) < 400 {
		a := netip.MustParseAddr(fmt.Sprintf("2001:db8:%x:%x::%x", r.IntN(0x10000), r.IntN(0x10000), 1+r.IntN(0xffff)))
		if !seen[a] {
			seen[a] = true
			v6 = append(v6, a)
		}
	}
	return v4, v6
}

func (g *gen) pid() int { return 1000 + g.r.IntN(31001) }

func (g *gen) failure() {
	r := g.r
	a := g.v4.pick(r)
	if r.Float64() < 0.02 {
		a = g.v6.pick(r)
		g.truth.IPv6++
	}
	g.truth.Failures++
	g.truth.attackerSet[a] = true
	hostport := fmt.Sprintf("%s:%d", a, 1024+r.IntN(64512))
	if a.Is6() {
		hostport = fmt.Sprintf("[%s]:%d", a, 1024+r.IntN(64512))
	}
	u := users[r.IntN(len(users))]
	if r.IntN(2) == 0 {
		g.truth.ChanSIP++
		reason := "Wrong password"
		switch x := r.Float64(); {
		case x >= 0.9:
			reason = "Username/auth name mismatch"
		case x >= 0.6:
			reason = "No matching peer found"
		}
		g.buf = fmt.Appendf(g.buf, `NOTICE[%d] chan_sip.c: Registration from '"%s" <sip:%s@%s:5060>' failed for '%s' - %s`,
			g.pid(), u, u, server, hostport, reason)
		return
	}
	g.truth.PJSIP++
	reason := "No matching endpoint found"
	if r.IntN(2) == 0 {
		reason = "Failed to authenticate"
	}
	g.buf = fmt.Appendf(g.buf, `NOTICE[%d] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from '"%s" <sip:%s@%s>' failed for '%s' (callid: %08x-%04x-%04x) - %s`,
		g.pid(), u, u, server, hostport, r.Uint32(), r.IntN(0x10000), r.IntN(0x10000), reason)
}

func (g *gen) callid() string {
	if g.r.IntN(2) == 0 {
		return fmt.Sprintf("[C-%08x]", g.r.Uint32())
	}
	return ""
}

func (g *gen) lan() string { return fmt.Sprintf("192.168.1.%d", 2+g.r.IntN(250)) }

func (g *gen) ext() string { return fmt.Sprintf("%d", 100+g.r.IntN(60)) }

func (g *gen) noise() {
	r := g.r
	x := r.Float64()
	if x >= 0.93 {
		g.truth.Benign++
		switch y := x - 0.93; {
		case y < 0.03:
			g.buf = fmt.Appendf(g.buf, "NOTICE[%d] chan_sip.c: Peer '%s' is now Reachable. (%dms / 2000ms)", g.pid(), g.ext(), 5+r.IntN(80))
		case y < 0.05:
			g.buf = fmt.Appendf(g.buf, "WARNING[%d] chan_sip.c: Retransmission timeout reached on transmission %08x@%s for seqno 102 (Critical Response) -- See https://wiki.asterisk.org/wiki/display/AST/SIP+Retransmissions",
				g.pid(), r.Uint32(), g.lan())
		default:
			g.buf = fmt.Appendf(g.buf, `SECURITY[%d] res_security_log.c: SecurityEvent="SuccessfulAuth",EventTV="2026-11-26T10:00:00.000+0000",Severity="Informational",Service="PJSIP",EventVersion="1",AccountID="%s",SessionID="%08x-%04x",LocalAddress="IPV4/UDP/%s/5060",RemoteAddress="IPV4/UDP/%s/5060",UsingPassword="1"`,
				g.pid(), g.ext(), r.Uint32(), r.IntN(0x10000), server, g.lan())
		}
		return
	}
	g.truth.Verbose++
	pre := fmt.Sprintf("VERBOSE[%d]%s ", g.pid(), g.callid())
	g.buf = append(g.buf, pre...)
	e := g.ext()
	switch {
	case x < 0.45:
		g.buf = fmt.Appendf(g.buf, `pbx.c:     -- Executing [%s@%s:%d] %s("PJSIP/%s-%08x", "%s") in new stack`,
			e, context[r.IntN(len(context))], 1+r.IntN(20), apps[r.IntN(len(apps))], e, r.Uint32(), "PJSIP/"+g.ext()+",30,tTr")
	case x < 0.55:
		g.buf = fmt.Appendf(g.buf, `res_pjsip_registrar.c:     -- Added contact 'sip:%s@%s:5060;transport=UDP;rinstance=%016x' to AOR '%s' with expiration of 3600 seconds`,
			e, g.lan(), r.Uint64(), e)
	case x < 0.65:
		g.buf = fmt.Appendf(g.buf, `app_dial.c:     -- Called PJSIP/%s/sip:%s@%s:5060`, e, e, g.lan())
	case x < 0.73:
		g.buf = fmt.Appendf(g.buf, `app_dial.c:     -- PJSIP/%s-%08x is ringing`, e, r.Uint32())
	case x < 0.78:
		g.buf = fmt.Appendf(g.buf, `bridge_channel.c:     -- Channel PJSIP/%s-%08x joined 'simple_bridge' basic-bridge <%08x-%04x-%04x-%04x-%012x>`,
			e, r.Uint32(), r.Uint32(), r.IntN(0x10000), r.IntN(0x10000), r.IntN(0x10000), r.Uint64()&0xffffffffffff)
	case x < 0.83:
		g.buf = fmt.Appendf(g.buf, `res_pjsip/pjsip_options.c:     -- Contact %s/sip:%s@%s:5060 is now Reachable.  RTT: %.3f msec`, e, e, g.lan(), r.Float64()*40)
	case x < 0.88:
		g.buf = fmt.Appendf(g.buf, `res_rtp_asterisk.c:     -- 0x7f%010x -- Strict RTP learning after remote address set to: %s:%d`, r.Uint64()&0xffffffffff, g.lan(), 10000+r.IntN(10000))
	default:
		g.buf = fmt.Appendf(g.buf, `pbx.c:   == Spawn extension (from-internal, %s, 1) exited non-zero on 'PJSIP/%s-%08x'`, e, e, r.Uint32())
	}
}
