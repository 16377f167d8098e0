package trunks

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Defaults of a trunk's timings.
const (
	DefaultMinTTL = time.Minute
	DefaultMaxTTL = time.Hour
	DefaultKeep   = 24 * time.Hour
)

// MaxKept bounds the addresses kept of one host name: an answer that
// changes at every resolution (a hostile server, a CDN) would otherwise
// add up to MaxAddrs every min_ttl, kept for keep (92,000 a day at the
// defaults), each change rebuilding the allowlist in the daemon and the
// kernel. Past it, the addresses answered longest ago go first, before
// keep; the newest answer is always kept whole.
const MaxKept = 4 * MaxAddrs

// Trunk is a provider admitted by name: the addresses its host names
// resolve to, and networks it publishes.
type Trunk struct {
	Name     string
	Hosts    []string       // DNS names
	Networks []netip.Prefix // admitted as they are
	SRV      bool           // also the targets of the hosts' SIP SRV records
	// A host is resolved again after its answer's TTL clamped to
	// [MinTTL, MaxTTL] (after MinTTL when resolution failed); an address
	// stays admitted until Keep after the last answer that held it, so a
	// DNS outage or a provider's move never cuts calls off at once.
	MinTTL, MaxTTL, Keep time.Duration
}

// withDefaults fills the timings left zero.
func (t Trunk) withDefaults() Trunk {
	if t.MinTTL <= 0 {
		t.MinTTL = DefaultMinTTL
	}
	if t.MaxTTL <= 0 {
		t.MaxTTL = DefaultMaxTTL
	}
	t.MaxTTL = max(t.MaxTTL, t.MinTTL)
	if t.Keep <= 0 {
		t.Keep = DefaultKeep
	}
	return t
}

// Lookup resolves a host name: *Resolver, or a stand-in in unit tests.
type Lookup interface {
	Resolve(ctx context.Context, host string, srv bool) (Answer, error)
}

// Status is what is known of a trunk.
type Status struct {
	Name     string         `json:"name"`
	Networks []netip.Prefix `json:"networks,omitempty"`
	Hosts    []HostStatus   `json:"hosts,omitempty"`
}

// HostStatus is what is known of one of a trunk's host names.
type HostStatus struct {
	Host        string        `json:"host"`
	Addrs       []Addr        `json:"addresses"` // admitted now
	TTL         time.Duration `json:"ttl"`       // of the last answer, clamped
	LastSuccess time.Time     `json:"last_success,omitzero"`
	LastTry     time.Time     `json:"last_try,omitzero"`
	Next        time.Time     `json:"next,omitzero"` // the next resolution
	Error       string        `json:"error,omitempty"`
	ErrorSince  time.Time     `json:"error_since,omitzero"` // failing since
}

// Addr is an admitted address.
type Addr struct {
	Addr     netip.Addr `json:"address"`
	Answered time.Time  `json:"answered"` // the last answer that held it
	// Until is when it is dropped unless an answer holds it again.
	Until time.Time `json:"until"`
}

// Set is what a Watcher hands over: the status of every trunk and
// everything to allow, complete each time.
type Set struct {
	Trunks []Status
	Allow  []netip.Prefix // networks and addresses, sorted, unique
}

// host is the state of one host name of a trunk.
type host struct {
	name   string
	seen   map[netip.Addr]time.Time // address -> last answered
	status HostStatus
}

// Watcher keeps trunks resolved. Create it with NewWatcher, then Run it on
// a goroutine of its own.
type Watcher struct {
	trunks []Trunk
	hosts  [][]*host // by trunk, by host
	lookup Lookup
	log    zerolog.Logger
	now    func() time.Time
}

// NewWatcher returns a watcher of trunks resolving through lookup.
func NewWatcher(trunks []Trunk, lookup Lookup, log zerolog.Logger) *Watcher {
	w := &Watcher{lookup: lookup, log: log, now: time.Now}
	for _, t := range trunks {
		t = t.withDefaults()
		w.trunks = append(w.trunks, t)
		var hs []*host
		for _, h := range t.Hosts {
			hs = append(hs, &host{name: h, seen: map[netip.Addr]time.Time{}, status: HostStatus{Host: h}})
		}
		w.hosts = append(w.hosts, hs)
	}
	return w
}

// Seed takes over what a previous watcher knew (its last Set, or the one
// saved before a restart) of the hosts of trunks of the same name: the
// addresses answered, until Keep after their answer, so that neither a
// reload nor a restart while DNS is down drops a trunk. Call it before
// Run.
func (w *Watcher) Seed(prev Set) {
	now := w.now()
	for i, t := range w.trunks {
		for _, st := range prev.Trunks {
			if st.Name != t.Name {
				continue
			}
			for _, hs := range st.Hosts {
				for _, h := range w.hosts[i] {
					if h.name != hs.Host {
						continue
					}
					for _, a := range hs.Addrs {
						if a.Addr.IsValid() && a.Answered.Add(t.Keep).After(now) {
							h.seen[a.Addr.Unmap()] = a.Answered
						}
					}
					h.status.LastSuccess, h.status.TTL = hs.LastSuccess, hs.TTL
					w.trim(t, h)
				}
			}
		}
	}
}

// Current returns the set as it stands (seeded, before Run): what to
// allow from the start.
func (w *Watcher) Current() Set { return w.set() }

// Run resolves the trunks until ctx is done, calling publish with the
// complete set after each answer (the networks first, before any DNS
// answer) and each address's end. publish runs on Run's goroutine.
//
// Each host name is resolved on a goroutine of its own (poll): a name
// whose resolution takes minutes (a server holding each query just under
// the timeout, along CNAME chains and SRV targets) holds up no other
// trunk's.
func (w *Watcher) Run(ctx context.Context, publish func(Set)) {
	publish(w.set())
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	answers := make(chan answer)
	for i, t := range w.trunks {
		for _, h := range w.hosts[i] {
			wg.Go(func() { w.poll(ctx, t, h, answers) })
		}
	}
	timer := time.NewTimer(w.untilExpiry())
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-answers:
			w.take(a)
		more: // the answers ready meanwhile: one publish for them all
			for {
				select {
				case a := <-answers:
					w.take(a)
				default:
					break more
				}
			}
		case <-timer.C:
		}
		now := w.now()
		for i, t := range w.trunks {
			for _, h := range w.hosts[i] {
				w.expire(t, h, now)
			}
		}
		publish(w.set())
		timer.Reset(w.untilExpiry())
	}
}

// answer is the outcome of one resolution of a host name.
type answer struct {
	trunk Trunk
	host  *host
	ans   Answer
	err   error
	at    time.Time
}

// poll resolves h.name until ctx is done, again after each answer's
// wait, handing each outcome to Run. It reads nothing of h but its name:
// Run's goroutine alone changes h.
func (w *Watcher) poll(ctx context.Context, t Trunk, h *host, out chan<- answer) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		ans, err := w.lookup.Resolve(ctx, h.name, t.SRV)
		if ctx.Err() != nil {
			return
		}
		select {
		case out <- answer{trunk: t, host: h, ans: ans, err: err, at: w.now()}:
		case <-ctx.Done():
			return
		}
		timer.Reset(t.wait(ans, err))
	}
}

// wait is how long after an answer its host name is resolved again: its
// TTL clamped to [MinTTL, MaxTTL], MinTTL after a failure.
func (t Trunk) wait(ans Answer, err error) time.Duration {
	if err != nil {
		return t.MinTTL
	}
	return min(max(ans.TTL, t.MinTTL), t.MaxTTL)
}

// take records an answer of a host name.
func (w *Watcher) take(r answer) {
	t, h, ans, err, now := r.trunk, r.host, r.ans, r.err, r.at
	h.status.LastTry = now
	h.status.Next = now.Add(t.wait(ans, err))
	// A partial answer (err with addresses) admits what it holds, like a
	// complete one, and is retried like a failure.
	var added []string
	for _, a := range ans.Addrs {
		if _, ok := h.seen[a]; !ok {
			added = append(added, a.String())
		}
		h.seen[a] = now
	}
	if len(added) > 0 {
		w.log.Info().Str("trunk", t.Name).Str("host", h.name).Strs("addresses", added).Msg("trunk addresses admitted")
	}
	w.trim(t, h)
	if err != nil {
		if h.status.Error == "" {
			h.status.ErrorSince = now
		}
		h.status.Error = err.Error()
		w.log.Warn().Err(err).Str("trunk", t.Name).Str("host", h.name).Int("answered", len(ans.Addrs)).Int("kept", len(h.seen)).
			Msg("trunk host not resolved, or in part; its last answer is kept")
		return
	}
	if h.status.Error != "" {
		w.log.Info().Str("trunk", t.Name).Str("host", h.name).Msg("trunk host resolved again")
	}
	h.status.Error, h.status.ErrorSince = "", time.Time{}
	h.status.TTL, h.status.LastSuccess = t.wait(ans, nil), now
}

// expire drops the addresses of h no answer has held for Keep.
func (w *Watcher) expire(t Trunk, h *host, now time.Time) {
	var gone []string
	for a, seen := range h.seen {
		if now.Sub(seen) >= t.Keep {
			delete(h.seen, a)
			gone = append(gone, a.String())
		}
	}
	if len(gone) == 0 {
		return
	}
	slices.Sort(gone)
	ev := w.log.Info()
	if h.status.Error != "" {
		ev = w.log.Error().Str("error", h.status.Error)
	}
	ev.Str("trunk", t.Name).Str("host", h.name).Strs("addresses", gone).Dur("keep", t.Keep).
		Msg("trunk addresses dropped: no answer held them for keep")
}

// trim drops the addresses of h answered longest ago while it keeps more
// than MaxKept (ties: the lowest addresses first, for a stable result).
func (w *Watcher) trim(t Trunk, h *host) {
	if len(h.seen) <= MaxKept {
		return
	}
	all := make([]netip.Addr, 0, len(h.seen))
	for a := range h.seen {
		all = append(all, a)
	}
	slices.SortFunc(all, func(a, b netip.Addr) int {
		if c := h.seen[a].Compare(h.seen[b]); c != 0 {
			return c
		}
		return a.Compare(b)
	})
	gone := all[:len(all)-MaxKept]
	for _, a := range gone {
		delete(h.seen, a)
	}
	w.log.Warn().Str("trunk", t.Name).Str("host", h.name).Int("dropped", len(gone)).Int("kept", MaxKept).
		Msg("trunk host answers too many different addresses: the oldest dropped before keep")
}

// untilExpiry returns how long until the first kept address's end (an
// hour when none: an answer wakes Run before).
func (w *Watcher) untilExpiry() time.Duration {
	var next time.Time
	for i, t := range w.trunks {
		for _, h := range w.hosts[i] {
			for _, seen := range h.seen {
				if end := seen.Add(t.Keep); next.IsZero() || end.Before(next) {
					next = end
				}
			}
		}
	}
	if next.IsZero() {
		return time.Hour
	}
	return max(next.Sub(w.now()), 10*time.Millisecond)
}

// set returns the complete set.
func (w *Watcher) set() Set {
	var s Set
	seen := map[netip.Prefix]bool{}
	allow := func(p netip.Prefix) {
		if !seen[p] {
			seen[p] = true
			s.Allow = append(s.Allow, p)
		}
	}
	for i, t := range w.trunks {
		st := Status{Name: t.Name, Networks: slices.Clone(t.Networks)}
		for _, p := range t.Networks {
			allow(p.Masked())
		}
		for _, h := range w.hosts[i] {
			hs := h.status
			hs.Addrs = []Addr{}
			for a, seen := range h.seen {
				hs.Addrs = append(hs.Addrs, Addr{Addr: a, Answered: seen, Until: seen.Add(t.Keep)})
				allow(netip.PrefixFrom(a, a.BitLen()))
			}
			slices.SortFunc(hs.Addrs, func(a, b Addr) int { return a.Addr.Compare(b.Addr) })
			st.Hosts = append(st.Hosts, hs)
		}
		s.Trunks = append(s.Trunks, st)
	}
	slices.SortFunc(s.Allow, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return s
}

// sortAddrs sorts addresses.
func sortAddrs(as []netip.Addr) { slices.SortFunc(as, netip.Addr.Compare) }
