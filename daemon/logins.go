package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sipguard/sipguard/logins"
	"github.com/sipguard/sipguard/parsers"
)

// loginsFile keeps where each account logged in from (package logins)
// across restarts: without it every address would be new again after one,
// and the toll-fraud new_address rule blind for its window.
const loginsFile = "logins.json"

// loginsEvery is how often the logins file is written at most while
// logins come in; the last ones are written at stop too.
const loginsEvery = time.Minute

// NewCountryRule is the rule name of new_country compromise notices.
const NewCountryRule = "new_country"

// restoreLogins reads the saved logins. A file that cannot be read is
// set aside and the daemon starts without it: losing it makes addresses
// new again, which must not keep the daemon from protecting.
func (d *Daemon) restoreLogins() {
	path := filepath.Join(d.cfg.StateDir, loginsFile)
	h, skipped, err := logins.Load(path, 0)
	if err != nil {
		aside := fmt.Sprintf("%s.corrupt-%d", path, d.now().Unix())
		os.Rename(path, aside)
		d.log.Error().Err(err).Str("kept_as", aside).Msg("saved logins unreadable; starting without them")
	} else if skipped > 0 {
		d.log.Warn().Int("skipped", skipped).Str(fieldPath, path).Msg("saved logins: entries past the bounds or invalid left out")
	}
	d.logins = h
	if d.guard != nil {
		d.guard.UseLogins(h)
	}
}

// saveLogins writes the logins file when logins came in since the last
// write and loginsEvery has passed (always, with final). The file is
// bounded (package logins), and only successful logins fill it.
func (d *Daemon) saveLogins(final bool) {
	now := d.now()
	if !d.logins.Changed() || !final && now.Sub(d.loginsSaved) < loginsEvery {
		return
	}
	d.loginsSaved = now
	if err := d.logins.Save(filepath.Join(d.cfg.StateDir, loginsFile)); err != nil {
		d.log.Error().Err(err).Msg("logins not saved: after a restart the accounts' addresses are new again")
	}
}

// login records a successful login: the address and country an account
// logged in from (the toll-fraud rules read them), and with [compromise]
// on_new_country, alerts when the country is one the account never used.
func (d *Daemon) login(ev *parsers.Event) {
	if ev.User == "" || !ev.Addr.IsValid() {
		return
	}
	country := d.country(ev.Addr)
	var before []string
	if a := d.logins.Account(ev.User); a != nil && d.cfg.CompromiseNewCountry {
		for c := range a.Countries {
			before = append(before, c)
		}
	}
	if !d.logins.Login(ev.User, ev.Addr, country, ev.Time) || !d.cfg.CompromiseNewCountry || d.eng.Allowed(ev.Addr.Unmap()) {
		return
	}
	slices.Sort(before)
	reason := fmt.Sprintf("login from %s, a country this account never logged in from (before: %s)", country, strings.Join(before, ", "))
	addr := ev.Addr.Unmap()
	d.log.Warn().Str(fieldIP, addr.String()).Str("user", ev.User).Str(fieldCountry, country).Strs("countries_before", before).
		Str(fieldSource, ev.Source).Str("service", ev.Service.String()).
		Msg("login from a country this account never used: check this account")
	d.notice(Notice{
		Type: NoticeCompromise, Target: d.eng.Prefix(addr), Addr: addr, Rule: NewCountryRule, Source: ev.Source, User: ev.User,
		Time: ev.Time, Reason: reason, Country: country,
	})
}
