package config

import "github.com/sipguard/sipguard/audit"

// AuditConfig is [audit]: `sipguard audit` run by the daemon.
type AuditConfig struct {
	Interval    Duration `toml:"interval"`
	AsteriskDir string   `toml:"asterisk_dir"`
	MinSeverity string   `toml:"min_severity"`
}

// Validate checks [audit].
func (a AuditConfig) Validate() []FieldError {
	var p problems
	if a.Interval < 0 {
		p.add("interval", "must not be negative (0s turns the audit off)")
	}
	if a.AsteriskDir == "" || a.AsteriskDir[0] != '/' {
		p.add("asterisk_dir", "%q: an absolute path", a.AsteriskDir)
	}
	if _, err := audit.ParseSeverity(a.MinSeverity); err != nil {
		p.err("min_severity", err)
	}
	return p
}
