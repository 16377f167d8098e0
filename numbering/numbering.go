// Package numbering reads dialled numbers the way a PBX's outbound routes
// do: it strips the dialling prefixes (international and national), and
// says which country (by E.164 country code) a number reaches and whether
// it falls in a range known for toll fraud (satellite, international
// networks, premium rate). It is pure: the tables are compiled in
// (codes.go, dated) and extended by the caller.
package numbering

import (
	"fmt"
	"strings"
	"sync"
)

// Plan is how numbers are dialled on the PBX.
type Plan struct {
	// InternationalPrefixes start a number dialled abroad ("00", "011");
	// "+" always does.
	InternationalPrefixes []string
	// NationalPrefix starts a national number dialled without the country
	// code (the trunk prefix, "0" in most of Europe, "1" in the NANP).
	NationalPrefix string
	// NationalDigits, where phones dial national numbers without a prefix
	// (Spain, Italy, Denmark, Norway have no trunk prefix), is how many
	// digits a number dialled with neither prefix has at least to be a
	// national number (9 in Spain); shorter ones are extensions. 0: never.
	// Without it such a country's national numbers, its premium-rate
	// ranges included, are never public.
	NationalDigits int
	// CountryCode is the PBX's own country calling code ("44"): a national
	// number becomes +CountryCode followed by the number. Empty: national
	// numbers are public numbers of an unknown country.
	CountryCode string
	// Home is the PBX's own country (ISO 3166-1 alpha-2), where the
	// country code alone does not say it: "CA" for a Canadian PBX in the
	// NANP (+1). Default: the region of CountryCode.
	Home string
	// Ranges extend or override the built-in risk ranges.
	Ranges []Range
	// Countries extend or override the built-in country codes (a row of
	// the same prefix replaces the built-in one).
	Countries []Country
}

// Country is an E.164 prefix and the region it reaches.
type Country struct {
	Prefix string // digits: "44", or longer for part of a code ("1876")
	ISO    string // ISO 3166-1 alpha-2; "" for non-geographic codes
	Name   string
}

// Range is a prefix of numbers that fraud is known to target.
type Range struct {
	Prefix   string // E.164 digits
	Category string // satellite, international_network, premium, personal, or a user's word
	Name     string
}

// Number is a dialled number as Classify reads it.
type Number struct {
	Dialled string // as dialled
	// Public is set for a number of the public network (dialled with an
	// international or national prefix); other numbers are internal
	// (extensions, feature codes) and get no other field.
	Public bool
	// International is set when the number reaches another country than
	// the Plan's own (whatever prefix it was dialled with: +1 876 numbers
	// are dialled like national ones in the NANP and reach Jamaica), or a
	// non-geographic code. Without a CountryCode in the Plan: when it was
	// dialled with an international prefix.
	International bool
	// E164 is the number with its country code, without "+"; empty for a
	// national number when the Plan has no CountryCode.
	E164    string
	Country Country // the country (or non-geographic code) reached; zero if unknown
	Risk    *Range  // the risk range the number falls in, if any
}

// Classify reads dialled, a number as a phone or the dialplan dialled it.
// Separators people type ("+44 (20) 7946-0000") are ignored; a number
// with other characters than digits, "+", "*" and "#" is not public.
func (p *Plan) Classify(dialled string) Number {
	n := Number{Dialled: dialled}
	digits, ok := clean(dialled)
	if !ok || digits == "" {
		return n
	}
	intl := false
	switch {
	case strings.HasPrefix(digits, "+"):
		digits, intl = digits[1:], true
	default:
		for _, pre := range p.InternationalPrefixes {
			if pre != "" && strings.HasPrefix(digits, pre) {
				digits, intl = digits[len(pre):], true
				break
			}
		}
	}
	if !intl {
		nsn, ok := p.national(digits)
		if !ok {
			return n // an extension, a feature code, a short number
		}
		digits = nsn
		if p.CountryCode == "" {
			n.Public = allDigits(digits)
			return n
		}
		digits = p.CountryCode + digits
	}
	if !allDigits(digits) || len(digits) < 3 || len(digits) > 15 {
		return n // E.164 numbers have at most 15 digits
	}
	n.Public, n.E164 = true, digits
	n.Country, _ = p.country(digits)
	if home := p.home(); home != "" && n.Country.Prefix != "" {
		n.International = n.Country.ISO != home
	} else {
		n.International = intl
	}
	n.Risk = p.risk(digits)
	return n
}

// national returns the national number in digits dialled without an
// international prefix, and whether they are one: the digits after the
// national prefix. In the NANP (+1) a national number is ten digits, NXX
// NXX XXXX, dialled after the 1 or without it (ten-digit dialling, as
// FreePBX's NXXNXXXXXX route allows): a Jamaican 876 number dialled so
// reaches Jamaica all the same, and extension 1001 is no number of +1.
func (p *Plan) national(digits string) (string, bool) {
	if p.CountryCode != "1" {
		switch {
		case p.NationalPrefix != "" && strings.HasPrefix(digits, p.NationalPrefix) && len(digits) > len(p.NationalPrefix):
			return digits[len(p.NationalPrefix):], true
		case p.NationalDigits > 0 && len(digits) >= p.NationalDigits:
			return digits, true
		}
		return "", false
	}
	if p.NationalPrefix != "" {
		digits = strings.TrimPrefix(digits, p.NationalPrefix)
	}
	if len(digits) == 11 && digits[0] == '1' {
		digits = digits[1:]
	}
	nxx := func(c byte) bool { return c >= '2' && c <= '9' }
	if len(digits) != 10 || !allDigits(digits) || !nxx(digits[0]) || !nxx(digits[3]) {
		return "", false
	}
	return digits, true
}

// clean drops the separators people write in numbers.
func clean(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9', c == '+' && b.Len() == 0, c == '*', c == '#':
			b.WriteByte(c)
		case c == ' ', c == '-', c == '.', c == '(', c == ')':
		default:
			return "", false
		}
	}
	return b.String(), true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// home is the Plan's own country: Home, or the region of CountryCode.
func (p *Plan) home() string {
	if p.Home != "" || p.CountryCode == "" {
		return p.Home
	}
	c, _ := p.country(p.CountryCode + "0000000")
	return c.ISO
}

// country returns the longest country prefix of digits.
func (p *Plan) country(digits string) (Country, bool) {
	var best Country
	for _, c := range p.Countries {
		if strings.HasPrefix(digits, c.Prefix) && len(c.Prefix) > len(best.Prefix) {
			best = c
		}
	}
	t := tables()
	for l := min(len(digits), 4); l > len(best.Prefix); l-- {
		if c, ok := t.countries[digits[:l]]; ok {
			return c, true
		}
	}
	return best, best.Prefix != ""
}

// risk returns the longest risk range digits fall in.
func (p *Plan) risk(digits string) *Range {
	var best *Range
	for i := range p.Ranges {
		r := &p.Ranges[i]
		if strings.HasPrefix(digits, r.Prefix) && (best == nil || len(r.Prefix) > len(best.Prefix)) {
			best = r
		}
	}
	t := tables()
	for i := range t.ranges {
		r := &t.ranges[i]
		if strings.HasPrefix(digits, r.Prefix) && (best == nil || len(r.Prefix) > len(best.Prefix)) {
			best = r
		}
	}
	return best
}

// Check reports the first invalid entry of p, naming it.
func (p *Plan) Check() error {
	for i, pre := range p.InternationalPrefixes {
		if !allDigits(pre) {
			return fmt.Errorf("international_prefix[%d]: %q: digits only", i, pre)
		}
	}
	if p.NationalPrefix != "" && !allDigits(p.NationalPrefix) {
		return fmt.Errorf("national_prefix: %q: digits only", p.NationalPrefix)
	}
	if p.NationalDigits < 0 || p.NationalDigits > 15 {
		return fmt.Errorf("national_digits: %d: 0 (off) to 15", p.NationalDigits)
	}
	if p.CountryCode != "" {
		if !allDigits(p.CountryCode) || len(p.CountryCode) > 3 {
			return fmt.Errorf("country_code: %q: one to three digits, without +", p.CountryCode)
		}
		if _, ok := p.country(p.CountryCode + "0000000"); !ok {
			return fmt.Errorf("country_code: %q is not an E.164 country code", p.CountryCode)
		}
	}
	if p.Home != "" && (len(p.Home) != 2 || strings.ToUpper(p.Home) != p.Home) {
		return fmt.Errorf("home_country: %q: an ISO 3166-1 alpha-2 code in capitals (\"GB\")", p.Home)
	}
	for i, r := range p.Ranges {
		if !allDigits(r.Prefix) || len(r.Prefix) > 15 {
			return fmt.Errorf("risk_prefixes[%d]: %q: E.164 digits without +", i, r.Prefix)
		}
	}
	for i, c := range p.Countries {
		if !allDigits(c.Prefix) || len(c.Prefix) > 15 {
			return fmt.Errorf("countries[%d]: %q: E.164 digits without +", i, c.Prefix)
		}
	}
	return nil
}

// ParseE164 reads "+44 20 7946 0000" or "442079460000" into digits.
func ParseE164(s string) (string, error) {
	d, ok := clean(strings.TrimPrefix(strings.TrimSpace(s), "+"))
	if !ok || !allDigits(d) || len(d) > 15 {
		return "", fmt.Errorf("%q is not an E.164 prefix (digits, optionally after +)", s)
	}
	return d, nil
}

// table is the compiled-in tables, read once.
type table struct {
	countries map[string]Country
	ranges    []Range
}

var tables = sync.OnceValue(func() *table {
	t := &table{countries: map[string]Country{}}
	for _, line := range strings.Split(strings.TrimSpace(countryCodes), "\n") {
		f := strings.SplitN(line, " ", 3)
		iso := f[1]
		if iso == "-" {
			iso = ""
		}
		t.countries[f[0]] = Country{Prefix: f[0], ISO: iso, Name: f[2]}
	}
	names := map[string]string{}
	for _, c := range t.countries {
		if c.ISO != "" {
			names[c.ISO] = c.Name
		}
	}
	names["CA"], names["PR"], names["VI"], names["GU"], names["MP"], names["AS"] =
		"Canada", "Puerto Rico", "US Virgin Islands", "Guam", "Northern Mariana Islands", "American Samoa"
	names["BS"], names["BB"], names["AI"], names["AG"], names["VG"], names["KY"], names["BM"], names["GD"] =
		"Bahamas", "Barbados", "Anguilla", "Antigua and Barbuda", "British Virgin Islands", "Cayman Islands", "Bermuda", "Grenada"
	names["TC"], names["JM"], names["MS"], names["SX"], names["LC"], names["DM"], names["VC"], names["DO"], names["TT"], names["KN"] =
		"Turks and Caicos Islands", "Jamaica", "Montserrat", "Sint Maarten", "Saint Lucia", "Dominica",
		"Saint Vincent and the Grenadines", "Dominican Republic", "Trinidad and Tobago", "Saint Kitts and Nevis"
	for _, line := range strings.Split(strings.TrimSpace(nanpAreas), "\n") {
		f := strings.Fields(line)
		for _, area := range f[1:] {
			t.countries["1"+area] = Country{Prefix: "1" + area, ISO: f[0], Name: names[f[0]]}
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(riskRanges), "\n") {
		f := strings.SplitN(line, " ", 3)
		t.ranges = append(t.ranges, Range{Category: f[0], Prefix: f[1], Name: f[2]})
	}
	return t
})
