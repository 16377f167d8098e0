package daemon

import (
	"fmt"
	"net/netip"

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
