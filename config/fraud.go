package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/sipguard/sipguard/calls"
	"github.com/sipguard/sipguard/fraud"
	"github.com/sipguard/sipguard/numbering"
)

// isCallParser reports whether a source's parser reads a call log: CEL
// through sipguard's cel_custom mapping, or CDR Master.csv.
func isCallParser(name string) bool { return name == "cel" || name == "cdr" }

// FraudConfig is [fraud]: the toll-fraud rules (package fraud) applied to
// the calls of CEL and CDR sources.
type FraudConfig struct {
	Enabled             bool     `toml:"enabled"`
	InternationalPrefix []string `toml:"international_prefix"`
	NationalPrefix      string   `toml:"national_prefix"`
	NationalDigits      int      `toml:"national_digits"`
	CountryCode         string   `toml:"country_code"`
	HomeCountry         string   `toml:"home_country"`
	AllowedCountries    []string `toml:"allowed_countries"`
	RiskRanges          bool     `toml:"risk_ranges"`
	RiskPrefixes        []string `toml:"risk_prefixes"`
	MaxConcurrent       int      `toml:"max_concurrent"`
	MaxCalls            int      `toml:"max_calls"`
	CallsWindow         Duration `toml:"calls_window"`
	MaxMinutes          float64  `toml:"max_international_minutes"`
	MinutesWindow       Duration `toml:"minutes_window"`
	BusinessHours       string   `toml:"business_hours"`
	Timezone            string   `toml:"timezone"`
	ProbePrefixes       int      `toml:"probe_prefixes"`
	ProbeWindow         Duration `toml:"probe_window"`
	ProbeMaxLength      Duration `toml:"probe_max_length"`
	NewAddressWindow    Duration `toml:"new_address_window"`
	Contexts            []string `toml:"contexts"`
	Cooldown            Duration `toml:"cooldown"`
	Action              string   `toml:"action"`
	BanTime             Duration `toml:"ban_time"`
	CDROptions          []string `toml:"cdr_options"`
}

// Validate checks [fraud], whether enabled or not: a rule switched on
// later must not hide a mistake until then.
func (f FraudConfig) Validate() []FieldError {
	var p problems
	if _, err := f.Options(); err != nil {
		p.err(fraudKey(err), err)
	}
	switch f.Action {
	case "alert", "ban":
	default:
		p.add("action", "%q is not one of alert, ban", f.Action)
	}
	if f.Action == "ban" {
		p.positive("ban_time", f.BanTime)
	}
	if _, err := f.CDRColumns(); err != nil {
		p.err("cdr_options", err)
	}
	for _, k := range []struct {
		key string
		v   int
	}{{"max_concurrent", f.MaxConcurrent}, {"max_calls", f.MaxCalls}, {"probe_prefixes", f.ProbePrefixes}} {
		if k.v < 0 {
			p.add(k.key, "must not be negative (0 turns the rule off)")
		}
	}
	if f.MaxMinutes < 0 {
		p.add("max_international_minutes", "must not be negative (0 turns the rule off)")
	}
	return p
}

// fraudKey finds the key an error of Options begins with
// ("allowed_countries: ...", "risk_prefixes[2] ..."), or "" for the
// section.
func fraudKey(err error) string {
	msg := err.Error()
	i := 0
	for i < len(msg) && (msg[i] >= 'a' && msg[i] <= 'z' || msg[i] == '_') {
		i++
	}
	if i == 0 || i == len(msg) || !strings.ContainsRune(":[ ", rune(msg[i])) {
		return ""
	}
	return msg[:i]
}

// Options returns the rules of [fraud] as package fraud's options.
func (f FraudConfig) Options() (fraud.Options, error) {
	o := fraud.Options{
		Plan: numbering.Plan{InternationalPrefixes: f.InternationalPrefix, NationalPrefix: f.NationalPrefix,
			NationalDigits: f.NationalDigits, CountryCode: f.CountryCode, Home: f.HomeCountry},
		AllowedCountries: f.AllowedCountries, RiskRanges: f.RiskRanges,
		MaxConcurrent: f.MaxConcurrent, MaxCalls: f.MaxCalls, CallsWindow: time.Duration(f.CallsWindow),
		MaxMinutes: f.MaxMinutes, MinutesWindow: time.Duration(f.MinutesWindow),
		ProbePrefixes: f.ProbePrefixes, ProbeWindow: time.Duration(f.ProbeWindow), ProbeMaxLength: time.Duration(f.ProbeMaxLength),
		NewAddressWindow: time.Duration(f.NewAddressWindow), Contexts: f.Contexts, Cooldown: time.Duration(f.Cooldown),
	}
	for i, s := range f.RiskPrefixes {
		d, err := numbering.ParseE164(s)
		if err != nil {
			return o, fmt.Errorf("risk_prefixes[%d]: %w", i, err)
		}
		o.Plan.Ranges = append(o.Plan.Ranges, numbering.Range{Prefix: d, Category: "user", Name: "risk_prefixes in [fraud]"})
	}
	loc := time.Local
	if f.Timezone != "" {
		var err error
		if loc, err = time.LoadLocation(f.Timezone); err != nil {
			return o, fmt.Errorf("timezone: %q is not a time zone (%v)", f.Timezone, err)
		}
	}
	if f.BusinessHours != "" {
		h, err := fraud.ParseHours(f.BusinessHours, loc)
		if err != nil {
			return o, fmt.Errorf("business_hours: %w", err)
		}
		o.BusinessHours = &h
	}
	if _, err := fraud.New(o); err != nil {
		return o, err
	}
	return o, nil
}

// CDRColumns reads cdr_options: the options of cdr.conf's [csv] section
// that change Master.csv's columns and times.
func (f FraudConfig) CDRColumns() (calls.CDRColumns, error) {
	var c calls.CDRColumns
	for _, o := range f.CDROptions {
		switch o {
		case "loguniqueid":
			c.UniqueID = true
		case "loguserfield":
			c.UserField = true
		case "newcdrcolumns":
			c.NewCDRColumns = true
		case "usegmtime":
			c.UTC = true
		default:
			return c, fmt.Errorf("%q is not one of loguniqueid, loguserfield, newcdrcolumns, usegmtime", o)
		}
	}
	return c, nil
}
