package daemon

import (
	"fmt"
	"net/netip"
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
