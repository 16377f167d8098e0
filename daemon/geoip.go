package daemon

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/geoip"
)

// openGeoIP opens the country database at path ("": none).
func openGeoIP(path string) (*geoip.DB, error) {
	if path == "" {
		return nil, nil
	}
	db, err := geoip.Open(path)
	if err != nil {
		return nil, fmt.Errorf("[geoip]: %w", err)
	}
	return db, nil
}

// staleGeoIP is the age past which the country database is said to be
// out of date: DB-IP and MaxMind publish theirs monthly, and addresses
// move between countries.
const staleGeoIP = 90 * 24 * time.Hour

// logGeoIP says which country database is in use, and when it is old.
func logGeoIP(log zerolog.Logger, db *geoip.DB, path string, now time.Time) {
	if db == nil {
		return
	}
	ev := log.Info()
	if age := now.Sub(db.Built); age > staleGeoIP {
		ev = log.Warn().Int("age_days", int(age.Hours()/24))
	}
	ev.Str(fieldPath, path).Str("type", db.Type).Time("built", db.Built).Msg("country database opened (update it monthly)")
}

// country returns addr's country ("" without a database, or unknown).
// Called on the core goroutine, which owns d.geo.
func (d *Daemon) country(addr netip.Addr) string { return d.geo.Country(addr) }

// banCountry returns the country of a ban: of the address whose events
// caused it, or of the network's first address (a feed's or a manual ban
// of a network).
func (d *Daemon) banCountry(r *bans.Record) string {
	if r.Addr.IsValid() {
		return d.country(r.Addr)
	}
	return d.country(r.Target.Addr())
}

// CountryNetworks opens the country database at path and puts the
// networks of p's allowed countries into p.Firewall.Countries: what the
// firewall is set up with at start, so that a restart does not drop those
// sources until New has read them again (New keeps them).
func CountryNetworks(log zerolog.Logger, path string, p *Policy) error {
	geo, err := openGeoIP(path)
	if err != nil {
		return err
	}
	defer geo.Close()
	return countryPolicy(log, geo, p)
}

// countryPolicy puts the networks of p's allowed countries, read from geo,
// into p.Firewall.Countries (none in open mode: nothing would use them).
// It walks the whole database (25 ms for 200,000 networks, measured by
// geoip.BenchmarkNetworks): New and
// Reload call it before the core goroutine is involved.
func countryPolicy(log zerolog.Logger, geo *geoip.DB, p *Policy) error {
	p.Firewall.Countries = nil
	if len(p.AllowCountries) == 0 {
		return nil
	}
	if !p.Firewall.Enforced() {
		log.Warn().Strs("countries", p.AllowCountries).Msg("[policy] allow_countries has no effect in open mode")
		return nil
	}
	if geo == nil {
		return fmt.Errorf("[policy] allow_countries needs a [geoip] database")
	}
	nets, err := geo.Networks(p.AllowCountries)
	if err != nil {
		return fmt.Errorf("[policy] allow_countries: %w", err)
	}
	if len(nets) == 0 {
		log.Warn().Strs("countries", p.AllowCountries).Msg("the country database has no network in the allowed countries")
	}
	log.Info().Strs("countries", p.AllowCountries).Int("networks", len(nets)).Msg("allowed countries read from the country database")
	p.Firewall.Countries = nets
	return nil
}

// allowedCountry returns addr's country when it is one of the allowed
// countries of an enforced policy and the networks loaded into the
// kernel's country sets hold addr, else "". The database answers for an
// IPv4 network's IPv6 aliases too (::/96, 6to4's 2002::/16), which the
// sets do not hold: the kernel drops those, and explain must say so.
func (d *Daemon) allowedCountry(addr netip.Addr) string {
	p := d.cfg.Policy
	if !p.Firewall.Enforced() || len(p.Firewall.Countries) == 0 {
		return ""
	}
	c := d.country(addr)
	if c == "" || !slices.Contains(p.AllowCountries, c) {
		return ""
	}
	if !slices.ContainsFunc(p.Firewall.Countries, func(n netip.Prefix) bool { return n.Contains(addr) }) {
		return ""
	}
	return c
}

// bansByCountry counts the bans in force by country ("unknown" for
// addresses the database does not know); nil without a database. The
// country of each target is looked up once and kept in d.banGeo (a
// metrics scrape reads the status every second: 100,000 lookups each time
// would hold up the core goroutine), which Reload empties with a new
// database, and which is rebuilt when it holds many ended targets.
func (d *Daemon) bansByCountry(now time.Time) map[string]int {
	if d.geo == nil {
		return nil
	}
	if d.banGeo == nil {
		d.banGeo = map[netip.Prefix]string{}
	}
	out, inForce := map[string]int{}, 0
	d.ledger.Targets(func(r *bans.Record) bool {
		if !r.InForce(now) {
			return true
		}
		c, ok := d.banGeo[r.Target]
		if !ok {
			c = d.banCountry(r)
			d.banGeo[r.Target] = c
		}
		out[cmp.Or(c, "unknown")]++
		inForce++
		return true
	})
	if len(d.banGeo) > 2*inForce+1024 {
		d.banGeo = nil // ended targets: start afresh next time
	}
	return out
}
