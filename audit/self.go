package audit

import "github.com/sipguard/sipguard/asteriskconf"

// Self is what sipguard audit knows of sipguard's own configuration.
type Self struct {
	// File is the rules.toml read ("" for the built-in defaults).
	File string
	// Unreadable lists the file sources that cannot be read now:
	// "source NAME: PATH: why".
	Unreadable []string
	// Allow lists [allow] addresses.
	Allow []string
}

func init() {
	Checks = append(Checks,
		Check{ID: "SIPGUARD-SOURCE-UNREADABLE", Severity: Medium, Title: "sipguard cannot read a log it follows",
			Why: "Attacks logged there are not counted: nothing is banned for them.",
			Fix: "Correct the source's path, or the log's permissions; sipguard check lists the same problems.", Source: "sipguard (docs/configuration.md)"},
		Check{ID: "SIPGUARD-NO-ALLOWLIST", Severity: Low, Title: "no SIP trunk or office in sipguard's allowlist",
			Why: "A trunk or an office behind one address that fails authentication a few times gets banned: calls stop.",
			Fix: "Add your SIP trunks' and offices' addresses to [allow] addresses in rules.toml.", Source: "sipguard (README: quick start)"},
	)
	for _, c := range Checks[len(Checks)-2:] {
		checkByID[c.ID] = c
	}
	checkers = append(checkers, checkSelf)
}

func checkSelf(a *audit, _ *dialplan) {
	s := a.h.Self
	if s == nil {
		return
	}
	pos := asteriskconf.Pos{File: s.File}
	for _, u := range s.Unreadable {
		a.add("SIPGUARD-SOURCE-UNREADABLE", pos, "%s", u)
	}
	if len(s.Allow) == 0 {
		a.add("SIPGUARD-NO-ALLOWLIST", pos, "[allow] addresses is empty: only loopback and the host's own addresses are never banned")
	}
}
