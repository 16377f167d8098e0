package audit

import (
	"time"

	"github.com/sipguard/sipguard/asteriskconf"
)

// release is one Asterisk major release's support dates.
type release struct {
	major int
	lts   bool
	// securityOnly is when it stopped getting bug fixes; eol when it
	// stopped getting security fixes.
	securityOnly, eol string
}

// releases is the end-of-life table. The policy is docs.asterisk.org's
// ("Asterisk Versions", "Software Configuration Management Policies"):
// LTS releases get 4 years of fixes and a 5th of security fixes only,
// standard releases 1 year and 1 more. The dates are each major's x.0.0
// release (its tag in github.com/asterisk/asterisk) plus those years; 13
// (extended by the project) and 16 are the published dates. Update it with
// each new major release. Majors below 10 (1.x) are all past their end of
// life.
var releases = []release{
	{10, false, "2012-12-15", "2013-12-15"},
	{11, true, "2016-10-25", "2017-10-25"},
	{12, false, "2014-12-20", "2015-12-20"},
	{13, true, "2020-10-24", "2021-10-24"},
	{14, false, "2017-09-23", "2018-09-23"},
	{15, false, "2018-09-28", "2019-09-28"},
	{16, true, "2022-10-09", "2023-10-09"},
	{17, false, "2020-10-25", "2021-10-25"},
	{18, true, "2024-10-20", "2025-10-20"},
	{19, false, "2022-11-02", "2023-11-02"},
	{20, true, "2026-10-19", "2027-10-19"},
	{21, false, "2024-10-18", "2025-10-18"},
	{22, true, "2028-10-17", "2029-10-17"},
	{23, false, "2026-10-15", "2027-10-15"},
}

// ReleasesChecked is when the table was last compared with its source.
const ReleasesChecked = "2026-12-02"

func checkRelease(a *audit, _ *dialplan) {
	pos := asteriskconf.Pos{}
	if a.h.Version == "" {
		a.add("RELEASE-UNKNOWN", pos, "neither 'asterisk -V', nor Asterisk's logs, nor --asterisk-version gave the version")
		return
	}
	major := majorOf(a.h.Version)
	from := ""
	if a.h.VersionFrom != "" {
		from = " (from " + a.h.VersionFrom + ")"
	}
	if major > 0 && major < 10 {
		a.add("RELEASE-EOL", pos, "Asterisk %s%s: the 1.x releases are all past their end of life", a.h.Version, from)
		return
	}
	today := a.h.Now.Format(time.DateOnly)
	for _, r := range releases {
		if r.major != major {
			continue
		}
		switch {
		case today >= r.eol:
			a.add("RELEASE-EOL", pos, "Asterisk %s%s: release %d reached its end of life on %s (table of %s)", a.h.Version, from, major, r.eol, ReleasesChecked)
		case today >= r.securityOnly:
			a.add("RELEASE-SECURITY-ONLY", pos, "Asterisk %s%s: release %d gets security fixes only since %s, none after %s", a.h.Version, from, major, r.securityOnly, r.eol)
		}
		return
	}
	a.add("RELEASE-UNKNOWN", pos, "Asterisk %s%s: release %d is not in the table of %s", a.h.Version, from, major, ReleasesChecked)
}
