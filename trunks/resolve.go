// Package trunks admits SIP providers by name: it resolves each trunk's
// host names through DNS (A and AAAA, and the SIP SRV records when asked),
// again when their TTLs run out, and hands the daemon complete sets of the
// addresses and networks to allow. It keeps the last good answer for a
// while when DNS fails, so a resolver outage never cuts a trunk off, and
// says so when it gives up.
//
// DNS answers are hostile input: answers are bounded in records and
// addresses, records for names not asked about are ignored, and CNAME
// chains are followed a bounded number of steps without loops.
package trunks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Bounds on what one resolution takes from DNS.
const (
	// MaxRecords is the most records an answer section may hold: more is
	// refused as an error (a hostile or broken server), not truncated.
	MaxRecords = 64
	// MaxAddrs is the most addresses one host name may resolve to,
	// SRV targets included.
	MaxAddrs = 64
	// MaxSRVTargets is the most SRV targets resolved for one host name.
	MaxSRVTargets = 8
	// maxCNAME is the most CNAME steps followed from a name.
	maxCNAME = 8
)

// SRVServices are the SRV names looked up under a host with SRV on.
var SRVServices = []string{"_sip._udp", "_sip._tcp", "_sips._tcp"}

// ErrNotFound is the error of a name that resolves to no address: it does
// not exist (NXDOMAIN) or has no A, AAAA or SRV records. A trunk that
// answers nothing is an error, never an empty set of trusted addresses.
var ErrNotFound = errors.New("no address")

// Resolver asks DNS servers, in order, until one answers.
type Resolver struct {
	Servers []string      // host:port
	Timeout time.Duration // of one query to one server
}

// DefaultTimeout is the timeout of one query to one server.
const DefaultTimeout = 5 * time.Second

// FromResolvConf returns a resolver asking the servers of a resolv.conf
// file (/etc/resolv.conf), with its timeout.
func FromResolvConf(path string) (*Resolver, error) {
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(cc.Servers) == 0 {
		return nil, fmt.Errorf("%s names no nameserver", path)
	}
	r := &Resolver{Timeout: DefaultTimeout}
	if cc.Timeout > 0 {
		r.Timeout = time.Duration(cc.Timeout) * time.Second
	}
	for _, s := range cc.Servers {
		r.Servers = append(r.Servers, net.JoinHostPort(s, cc.Port))
	}
	return r, nil
}

// Answer is what a host name resolves to.
type Answer struct {
	Addrs []netip.Addr  // sorted, unique
	TTL   time.Duration // the smallest TTL of the records used
}

// Resolve returns the addresses of host: its A and AAAA records and, with
// srv, those of the targets of its SIP SRV records (SRVServices). A
// server failure (timeout, SERVFAIL, an answer too large) of a query is
// an error, returned with the addresses the other queries answered (a
// partial answer; none when none did): one query failing for good (a
// middlebox that drops AAAA, an SRV target whose DNS is dead or hostile)
// must not keep the others' addresses from being admitted, nor drop them
// after keep. A name with no address at all and no failure is
// ErrNotFound.
func (r *Resolver) Resolve(ctx context.Context, host string, srv bool) (Answer, error) {
	name := dns.CanonicalName(host)
	if _, ok := dns.IsDomainName(name); !ok {
		return Answer{}, fmt.Errorf("%q is not a host name", host)
	}
	q := &query{r: r, ctx: ctx, ttl: -1, seen: map[netip.Addr]bool{}}
	var errs []error
	errs = append(errs, q.addrs(name)...)
	if srv {
		var targets []string
	services:
		for _, svc := range SRVServices {
			ts, err := q.srv(svc + "." + name)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, t := range ts {
				if contains(targets, t) {
					continue
				}
				if len(targets) == MaxSRVTargets {
					errs = append(errs, fmt.Errorf("%s: more than %d SRV targets", host, MaxSRVTargets))
					break services
				}
				targets = append(targets, t)
			}
		}
		for _, t := range targets {
			errs = append(errs, q.addrs(t)...)
		}
	}
	if err := ctx.Err(); err != nil {
		return Answer{}, err // stopped: nothing half-asked is an answer
	}
	if len(errs) == 0 && len(q.out) == 0 {
		return Answer{}, fmt.Errorf("%s: %w (%s)", host, ErrNotFound, q.why(srv))
	}
	var ans Answer
	if len(q.out) > 0 {
		sortAddrs(q.out)
		ans = Answer{Addrs: q.out, TTL: time.Duration(q.ttl) * time.Second}
	}
	return ans, errors.Join(errs...)
}

// query is one resolution: the addresses found, the smallest TTL.
type query struct {
	r    *Resolver
	ctx  context.Context
	out  []netip.Addr
	seen map[netip.Addr]bool
	ttl  int64 // -1: none yet
	nx   bool  // a name asked for its addresses did not exist
}

// why says why a resolution found no address.
func (q *query) why(srv bool) string {
	switch {
	case q.nx:
		return "NXDOMAIN"
	case srv:
		return "no A, AAAA or SIP SRV record"
	}
	return "no A or AAAA record"
}

func (q *query) useTTL(ttl uint32) {
	if q.ttl < 0 || int64(ttl) < q.ttl {
		q.ttl = int64(ttl)
	}
}

// addrs adds the A and AAAA addresses of name, and returns the errors of
// its two lookups. A lookup adds all its addresses or, when they would
// be more than MaxAddrs in all, none.
func (q *query) addrs(name string) (errs []error) {
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		if err := q.addrsOf(name, t); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// addrsOf adds the addresses of name's records of type t (A or AAAA).
func (q *query) addrsOf(name string, t uint16) error {
	rrs, nx, err := q.lookup(name, t)
	if err != nil {
		return err
	}
	q.nx = q.nx || nx
	var found []netip.Addr
	for _, rr := range rrs {
		var a netip.Addr
		switch rr := rr.(type) {
		case *dns.A:
			a, _ = netip.AddrFromSlice(rr.A.To4())
		case *dns.AAAA:
			a, _ = netip.AddrFromSlice(rr.AAAA.To16())
		}
		a = a.Unmap()
		if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || q.seen[a] || slices.Contains(found, a) {
			continue
		}
		if len(q.out)+len(found) == MaxAddrs {
			return fmt.Errorf("%s: more than %d addresses", name, MaxAddrs)
		}
		found = append(found, a)
	}
	for _, a := range found {
		q.seen[a] = true
	}
	q.out = append(q.out, found...)
	return nil
}

// srv returns the targets of the SRV records of name (none when it does
// not exist: most providers publish no SRV for some transports).
func (q *query) srv(name string) ([]string, error) {
	rrs, _, err := q.lookup(name, dns.TypeSRV)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range rrs {
		s, ok := rr.(*dns.SRV)
		if !ok {
			continue
		}
		t := dns.CanonicalName(s.Target)
		if t == "." { // "service not available here" (RFC 2782)
			continue
		}
		out = append(out, t)
	}
	return out, nil
}

// lookup returns the records of type t that answer name, following its
// CNAMEs within an answer and, when the chain leaves it, by asking for the
// chain's next name; records for any other name are ignored. A name that
// does not exist (nx), or has no such records, gives none.
func (q *query) lookup(name string, t uint16) (rrs []dns.RR, nx bool, err error) {
	visited := map[string]bool{name: true}
	var msg *dns.Msg
	for steps := 0; ; steps++ {
		if msg == nil {
			if msg, err = q.exchange(name, t); err != nil {
				return nil, false, err
			}
			if msg.Rcode == dns.RcodeNameError {
				return nil, true, nil
			}
		}
		out, next := q.pick(msg.Answer, name, t)
		switch {
		case len(out) > 0:
			return out, false, nil
		case next == "":
			return nil, false, nil
		case visited[next]:
			return nil, false, fmt.Errorf("%s: CNAME loop at %s", name, next)
		case steps == maxCNAME:
			return nil, false, fmt.Errorf("%s: CNAME chain longer than %d", name, maxCNAME)
		}
		visited[next] = true
		name = next
		if !hasName(msg.Answer, name) {
			msg = nil // not in this answer: ask
		}
	}
}

// pick returns the records of type t for name in an answer, or else the
// target of name's CNAME there; their TTLs count.
func (q *query) pick(answer []dns.RR, name string, t uint16) (out []dns.RR, cname string) {
	var cnameTTL uint32
	for _, rr := range answer {
		h := rr.Header()
		if dns.CanonicalName(h.Name) != name {
			continue // not asked about: ignored
		}
		switch {
		case h.Rrtype == t:
			q.useTTL(h.Ttl)
			out = append(out, rr)
		case h.Rrtype == dns.TypeCNAME && cname == "":
			if c, ok := rr.(*dns.CNAME); ok {
				cname, cnameTTL = dns.CanonicalName(c.Target), h.Ttl
			}
		}
	}
	if len(out) == 0 && cname != "" {
		q.useTTL(cnameTTL)
	}
	return out, cname
}

// hasName reports whether an answer holds a record for name.
func hasName(rrs []dns.RR, name string) bool {
	for _, rr := range rrs {
		if dns.CanonicalName(rr.Header().Name) == name {
			return true
		}
	}
	return false
}

// exchange asks the servers in turn for name's records of type t, over
// UDP and then TCP when the answer is truncated; it returns the first
// answer that is NOERROR or NXDOMAIN for the question asked.
func (q *query) exchange(name string, t uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, t)
	m.SetEdns0(dns.DefaultMsgSize, false)
	var errs []string
	for _, server := range q.r.Servers {
		if err := q.ctx.Err(); err != nil {
			return nil, err
		}
		resp, err := q.ask(m, server)
		if err != nil {
			if q.ctx.Err() != nil {
				return nil, q.ctx.Err()
			}
			errs = append(errs, err.Error())
			continue
		}
		return resp, nil
	}
	if len(q.r.Servers) == 0 {
		errs = append(errs, "no DNS server")
	}
	return nil, fmt.Errorf("%s %s: %s", name, dns.TypeToString[t], strings.Join(errs, "; "))
}

// ask asks one server.
func (q *query) ask(m *dns.Msg, server string) (*dns.Msg, error) {
	timeout := q.r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	c := &dns.Client{Net: "udp", Timeout: timeout, UDPSize: dns.DefaultMsgSize}
	resp, err := q.exchangeOn(c, m, server)
	if err == nil && resp.Truncated {
		c.Net = "tcp"
		resp, err = q.exchangeOn(c, m, server)
	}
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: %w", server, err)
	case resp.Id != m.Id || len(resp.Question) != 1 || !strings.EqualFold(resp.Question[0].Name, m.Question[0].Name) ||
		resp.Question[0].Qtype != m.Question[0].Qtype:
		return nil, fmt.Errorf("%s: the answer is not to the question asked", server)
	case resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError:
		return nil, fmt.Errorf("%s: %s", server, dns.RcodeToString[resp.Rcode])
	case len(resp.Answer) > MaxRecords:
		return nil, fmt.Errorf("%s: %d records in the answer, more than %d", server, len(resp.Answer), MaxRecords)
	}
	return resp, nil
}

// exchangeOn sends m to server with c on a connection of its own, closed
// when the query's context is done: miekg/dns only heeds a context's
// deadline, and a cancelled context must end a query waiting on a silent
// server at once (the daemon stopping).
func (q *query) exchangeOn(c *dns.Client, m *dns.Msg, server string) (*dns.Msg, error) {
	conn, err := c.DialContext(q.ctx, server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(q.ctx, func() { conn.Close() })
	defer stop()
	resp, _, err := c.ExchangeWithConnContext(q.ctx, m, conn)
	if err != nil && q.ctx.Err() != nil {
		return nil, q.ctx.Err()
	}
	return resp, err
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
