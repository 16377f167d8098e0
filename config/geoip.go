package config

import "github.com/sipguard/sipguard/geoip"

// GeoIPConfig is [geoip]: the country database (package geoip) that the
// report, ban logs, notifications, `list`, the toll-fraud new_address rule
// and [compromise] on_new_country look addresses up in.
type GeoIPConfig struct {
	// Database is the path of a MaxMind-format country database (DB-IP
	// Lite country, GeoLite2-Country); "" for none.
	Database string `toml:"database"`
}

// Validate checks [geoip]: the database is opened and checked whole, so
// that `check` (and a reload) refuses a missing, corrupt or foreign file
// with the line of the key, before the daemon would.
func (g GeoIPConfig) Validate() []FieldError {
	if g.Database == "" {
		return nil
	}
	var p problems
	db, err := geoip.Open(g.Database)
	if err != nil {
		p.err("database", err)
		return p
	}
	db.Close()
	return p
}
