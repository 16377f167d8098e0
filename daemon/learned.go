package daemon

// This file is the access policy of the SIP ports on the daemon's side
// (issue 15): the mode set in the firewall at start and on reload, the
// learned phones (an address that logs in successfully is admitted for
// LearnFor, never one whose login looks like a guessed password) and their
// state file. The control requests (learned, forget, explain) are in
// control.go.

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"time"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/store"
)

// Policy is the access policy of the SIP ports ([policy]).
type Policy struct {
	Firewall firewall.Policy
	// LearnFor is how long a successful login admits its address
	// (renewed by each one); 0 is a day.
	LearnFor time.Duration
	// BanPorts are [firewall] ports, the ports the default bans drop
	// (empty: all): what `policy explain` needs to say whether a ban
	// drops a port.
	BanPorts []firewall.Port
	// AllowCountries ([policy] allow_countries) are admitted to the SIP
	// ports in strict and responsive mode: their networks, read from the
	// country database by countryPolicy, go into Firewall.Countries.
	AllowCountries []string
}

// policyFirewall is a backend that enforces the policy (the nftables
// one; dry-run does not).
type policyFirewall interface {
	SetPolicy(ctx context.Context, p firewall.Policy) error
	Learn(ctx context.Context, ls ...firewall.Learned) error
	Forget(ctx context.Context, addrs ...netip.Addr) error
}

// learnedFile holds the learned addresses across restarts.
const learnedFile = "learned.json"

// maxLearned bounds the addresses learned at once: one account's password
// used from a botnet without a failure must not grow memory, the state
// file and the kernel set without end. Past it, new addresses are not
// learned (logged once a minute at most) until others expire.
const maxLearned = 100000

// MaxLearnedPerAccount bounds the addresses one account has learned at
// once: its password used from ever new addresses (a botnet, or one IPv6
// /64, which holds any number) must not fill maxLearned and keep every
// other phone from being learned, shut out in strict mode, for
// learn_for. Past it, the account's logins from new addresses are not
// learned until some of its own expire. Logins that name no account are
// not counted.
const MaxLearnedPerAccount = 64

// learnedAddr is a learned address, as kept and saved.
type learnedAddr struct {
	Addr    netip.Addr `json:"addr"`
	Until   time.Time  `json:"until"`
	Since   time.Time  `json:"since"`
	Account string     `json:"account,omitempty"` // attacker-written text
	Source  string     `json:"source,omitempty"`
}

// refusedAddr is an address whose logins are not learned until Until:
// the compromise rule fired for it.
type refusedAddr struct {
	Addr  netip.Addr `json:"addr"`
	Until time.Time  `json:"until"`
}

type learnedState struct {
	Learned []learnedAddr `json:"learned"`
	Refused []refusedAddr `json:"refused,omitempty"`
}

func (d *Daemon) learnFor() time.Duration {
	if d.cfg.Policy.LearnFor > 0 {
		return d.cfg.Policy.LearnFor
	}
	return 24 * time.Hour
}

// learnFrom learns the address of a successful login, unless the login
// looks like a guessed password: the compromise rule fired for the
// address (now or within learn_for before), or the address has as many
// failures within the rule's window as the rule asks for, whatever its
// action (the rule reports an address once per window; the door stays
// shut every time). Allowlisted and special-purpose addresses need no
// learning. Nor is a login read from a syslog message that someone other
// than its sender may have written (forgeable: a UDP datagram, a TCP
// message framed by a newline; see syslogd.Message) learned: it would
// admit the address it names, the forger's own, to the SIP ports.
func (d *Daemon) learnFrom(ev *parsers.Event, forgeable bool) {
	a := ev.Addr.Unmap()
	if !a.IsValid() || d.eng.Allowed(a) {
		return
	}
	host := netip.PrefixFrom(a, a.BitLen())
	if _, bad := bans.Special(host); bad {
		return
	}
	now := d.now()
	if forgeable {
		d.learnRefusals++
		if now.Sub(d.learnForgeableWarned) >= time.Minute {
			d.learnForgeableWarned = now
			d.log.Warn().Str(fieldIP, a.String()).Str("user", ev.User).Str(fieldSource, ev.Source).
				Msg("successful login read from a syslog message anyone could forge (UDP, or TCP framed by newlines): not learned; send the PBX's log over TCP with octet counting to learn phones")
		}
		return
	}
	if until, ok := d.learnRefused[a]; ok && until.After(now) {
		d.learnRefusals++
		return
	}
	c := d.cfg.Engine.Compromise
	if n := d.eng.Recent(a, ev.Time.Add(-c.Window)); n >= max(c.MinFailures, 1) {
		d.learnRefusals++
		d.log.Warn().Str(fieldIP, a.String()).Str("user", ev.User).Int("failures", n).
			Msg("successful login after failures: not learned (a guessed password must not open the SIP ports)")
		return
	}
	until := ev.Time.Add(d.learnFor())
	if !until.After(now) {
		return // an old line, re-read: over already
	}
	old := d.learned[a]
	if old != nil && !until.After(old.Until) {
		return
	}
	if old == nil && len(d.learned) >= maxLearned {
		d.learnRefusals++
		if now.Sub(d.learnFullWarned) >= time.Minute {
			d.learnFullWarned = now
			d.log.Warn().Int("learned", len(d.learned)).Str(fieldIP, a.String()).
				Msg("too many learned addresses: new logins are not learned until some expire")
		}
		return
	}
	if (old == nil || old.Account != ev.User) && ev.User != "" && d.learnedBy[ev.User] >= MaxLearnedPerAccount {
		d.learnRefusals++
		if now.Sub(d.learnAccountWarned) >= time.Minute {
			d.learnAccountWarned = now
			d.log.Warn().Str("user", ev.User).Int("learned", d.learnedBy[ev.User]).Str(fieldIP, a.String()).
				Msg("too many learned addresses of one account (its password used from everywhere?): its new addresses are not learned until some expire")
		}
		return
	}
	l := &learnedAddr{Addr: a, Until: until, Since: ev.Time, Account: ev.User, Source: ev.Source}
	if old != nil && old.Until.After(now) {
		l.Since = old.Since
	}
	d.setLearned(l)
	// A login renews the kernel's timeout only when that moves it by a
	// hundredth of learn_for: a phone re-registering every minute costs
	// no transaction each time.
	if old != nil && old.Until.After(now) && until.Sub(old.Until) < d.learnFor()/100 {
		return
	}
	if old == nil {
		d.log.Info().Str(fieldIP, a.String()).Str("user", ev.User).Str(fieldSource, ev.Source).Time("until", until).
			Msg("learned: admitted to the SIP ports")
	}
	d.kernelLearn(firewall.Learned{Addr: a, Timeout: until.Sub(now)})
}

func (d *Daemon) kernelLearn(ls ...firewall.Learned) {
	pf, ok := d.fw.(policyFirewall)
	if !ok || len(ls) == 0 {
		return
	}
	if err := pf.Learn(d.ctx(), ls...); err != nil {
		d.fwErrors++
		d.log.Error().Err(err).Int("addresses", len(ls)).Msg("learned addresses not loaded into the firewall")
	}
}

// ctx is the daemon's run context (Background before Run).
func (d *Daemon) ctx() context.Context {
	if d.runCtx != nil {
		return d.runCtx
	}
	return context.Background()
}

// refuseLearning forgets a and refuses to learn it for learn_for: the
// compromise rule fired for it.
func (d *Daemon) refuseLearning(a netip.Addr, t time.Time) {
	a = a.Unmap()
	d.learnRefused[a] = t.Add(d.learnFor())
	d.learnedDirty = true
	forgotten := d.forget(a)
	d.log.Warn().Str(fieldIP, a.String()).Bool("forgotten", forgotten).Time("until", t.Add(d.learnFor())).
		Msg("logins from this address are not learned (a guessed password must not open the SIP ports)")
}

// forget removes a learned address, from memory and the firewall.
func (d *Daemon) forget(a netip.Addr) bool {
	if _, ok := d.learned[a]; !ok {
		return false
	}
	d.unsetLearned(a)
	if pf, ok := d.fw.(policyFirewall); ok {
		if err := pf.Forget(d.ctx(), a); err != nil {
			d.fwErrors++
			d.log.Error().Err(err).Str(fieldIP, a.String()).Msg("learned address not removed from the firewall")
		}
	}
	return true
}

// setLearned records l, replacing what was learned of its address, and
// keeps d.learnedBy counting the addresses of each account.
func (d *Daemon) setLearned(l *learnedAddr) {
	d.unsetLearned(l.Addr)
	d.learned[l.Addr] = l
	if l.Account != "" {
		d.learnedBy[l.Account]++
	}
	d.learnedDirty = true
}

// unsetLearned removes what was learned of a, if anything.
func (d *Daemon) unsetLearned(a netip.Addr) {
	old := d.learned[a]
	if old == nil {
		return
	}
	delete(d.learned, a)
	if old.Account != "" {
		if d.learnedBy[old.Account]--; d.learnedBy[old.Account] <= 0 {
			delete(d.learnedBy, old.Account)
		}
	}
	d.learnedDirty = true
}

// expireLearned drops what has run out (the kernel expires its elements
// itself) and saves the learned addresses when they changed.
func (d *Daemon) expireLearned() {
	now := d.now()
	for a, l := range d.learned {
		if !l.Until.After(now) {
			d.unsetLearned(a)
		}
	}
	for a, until := range d.learnRefused {
		if !until.After(now) {
			delete(d.learnRefused, a)
			d.learnedDirty = true
		}
	}
	d.saveLearned()
}

// saveLearned writes the learned addresses when they changed: a small
// file, written at most once a tick.
func (d *Daemon) saveLearned() {
	if !d.learnedDirty {
		return
	}
	st := learnedState{Learned: []learnedAddr{}}
	for _, l := range d.learned {
		st.Learned = append(st.Learned, *l)
	}
	for a, until := range d.learnRefused {
		st.Refused = append(st.Refused, refusedAddr{a, until})
	}
	slices.SortFunc(st.Learned, func(x, y learnedAddr) int { return x.Addr.Compare(y.Addr) })
	slices.SortFunc(st.Refused, func(x, y refusedAddr) int { return x.Addr.Compare(y.Addr) })
	if err := store.Save(filepath.Join(d.cfg.StateDir, learnedFile), st); err != nil {
		d.log.Error().Err(err).Msg("learned addresses not saved")
		return
	}
	d.learnedDirty = false
}

// restorePolicy sets the policy in the firewall and loads the learned
// addresses saved by the last run into it: after the bans, before the
// logs are followed.
func (d *Daemon) restorePolicy(ctx context.Context) error {
	pf, ok := d.fw.(policyFirewall)
	if d.cfg.Policy.Firewall.Enforced() && !ok {
		d.log.Warn().Str("mode", d.cfg.Policy.Firewall.Mode).Msg("this firewall backend does not enforce [policy]: the SIP ports stay open")
	}
	if ok {
		if err := pf.SetPolicy(ctx, d.cfg.Policy.Firewall); err != nil {
			return fmt.Errorf("set the policy of the SIP ports: %w", err)
		}
	}
	var st learnedState
	path := filepath.Join(d.cfg.StateDir, learnedFile)
	if _, err := store.Load(path, &st); err != nil {
		d.log.Error().Err(err).Str(fieldPath, path).Msg("saved learned addresses unreadable; starting without them")
	}
	now := d.now()
	var ls []firewall.Learned
	for _, l := range st.Learned {
		if !l.Addr.IsValid() || !l.Until.After(now) || d.eng.Allowed(l.Addr) {
			continue
		}
		l.Addr = l.Addr.Unmap()
		d.setLearned(&l)
		ls = append(ls, firewall.Learned{Addr: l.Addr, Timeout: l.Until.Sub(now)})
	}
	for _, r := range st.Refused {
		if r.Addr.IsValid() && r.Until.After(now) {
			d.learnRefused[r.Addr.Unmap()] = r.Until
		}
	}
	d.kernelLearn(ls...)
	if len(ls) > 0 {
		d.log.Info().Int("addresses", len(ls)).Msg("learned addresses restored")
	}
	return nil
}

// reloadPolicy sets a changed policy in the firewall, in one transaction;
// [firewall] early (the chains' hooks) changes only on restart. It runs
// before the new config is in place; p is changed in place.
func (d *Daemon) reloadPolicy(ctx context.Context, p *Policy) error {
	if p.Firewall.Early != d.cfg.Policy.Firewall.Early {
		d.log.Warn().Msg("[firewall] early changes take effect on restart")
		p.Firewall.Early = d.cfg.Policy.Firewall.Early
	}
	if reflect.DeepEqual(p.Firewall, d.cfg.Policy.Firewall) {
		return nil
	}
	pf, ok := d.fw.(policyFirewall)
	if !ok {
		if p.Firewall.Enforced() {
			d.log.Warn().Str("mode", p.Firewall.Mode).Msg("this firewall backend does not enforce [policy]: the SIP ports stay open")
		}
		return nil
	}
	if err := pf.SetPolicy(ctx, p.Firewall); err != nil {
		d.fwErrors++
		return fmt.Errorf("set the policy of the SIP ports: %w", err)
	}
	d.log.Info().Str("mode", p.Firewall.Mode).Msg("policy of the SIP ports changed")
	return nil
}

func cmpMode(m string) string {
	if m == "" {
		return firewall.PolicyOpen
	}
	return m
}
