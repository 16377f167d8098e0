// Package audit finds the settings and passwords that make a PBX easy to
// break into: guest calls that reach outbound routes, weak SIP, AMI and
// voicemail secrets, services open to every address, an Asterisk release
// past its end of life. Bans answer attacks; most successful toll fraud
// starts with one of these.
//
// It reads Asterisk's configuration (FreePBX's generated files too) with
// package asteriskconf, through an fs.FS rooted at "/", and never runs or
// changes anything. Each check is in Checks, with its ID, severity, why it
// matters, how to fix it and the hardening guide it comes from; a Finding
// says where (file:line) and what, with secrets masked.
package audit

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/sipguard/sipguard/asteriskconf"
)

// Severity orders findings; a higher one is worse.
type Severity int

// The severities, lowest first.
const (
	Info Severity = iota
	Low
	Medium
	High
	Critical
)

var severityNames = []string{"info", "low", "medium", "high", "critical"}

func (s Severity) String() string {
	if s < Info || s > Critical {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity reads "info", "low", "medium", "high" or "critical".
func ParseSeverity(s string) (Severity, error) {
	i := slices.Index(severityNames, strings.ToLower(s))
	if i < 0 {
		return 0, fmt.Errorf("unknown severity %q (want %s)", s, strings.Join(severityNames, ", "))
	}
	return Severity(i), nil
}

// SeverityNames lists the severities, lowest first.
func SeverityNames() []string { return slices.Clone(severityNames) }

func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	*s = v
	return err
}

// Check describes one kind of finding.
type Check struct {
	ID       string   `json:"id"`
	Severity Severity `json:"severity"` // the usual one; a finding may be raised or lowered
	Title    string   `json:"title"`
	Why      string   `json:"why"`
	Fix      string   `json:"fix"`
	// FreePBX says which FreePBX setting fixes it, when there is one.
	FreePBX string `json:"freepbx,omitempty"`
	Source  string `json:"source"`
}

// Finding is one weak setting found.
type Finding struct {
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	File     string   `json:"file,omitempty"`
	Line     int      `json:"line,omitempty"`
	// Detail says what was found there; secrets in it are masked.
	Detail string `json:"detail"`
	Title  string `json:"title"`
	Why    string `json:"why"`
	Fix    string `json:"fix"`
	// FreePBX names the FreePBX setting that fixes it, when there is one.
	FreePBX string `json:"freepbx,omitempty"`
	Source  string `json:"source"`
	// Accounts are the names a weak secret's account logs in as (the
	// section, its user names, the endpoints using it): what
	// `sipguard report` marks among the accounts being guessed.
	Accounts []string `json:"accounts,omitempty"`
}

// Where is "file:line", "file" or "".
func (f Finding) Where() string {
	switch {
	case f.File == "":
		return ""
	case f.Line == 0:
		return f.File
	}
	return fmt.Sprintf("%s:%d", f.File, f.Line)
}

// Host is what the audit reads.
type Host struct {
	// FS is the file system rooted at "/" (os.DirFS("/")).
	FS fs.FS
	// Dir is Asterisk's configuration directory, e.g. "/etc/asterisk".
	Dir string
	// Version is Asterisk's version ("20.5.0"), "" when unknown;
	// VersionFrom says where it was found.
	Version, VersionFrom string
	// Now is the date the end-of-life table is compared with.
	Now time.Time
	// Self, when set, adds the checks of sipguard's own configuration.
	Self *Self
}

// Report is an audit's result.
type Report struct {
	Dir string `json:"asterisk_dir"`
	// Files lists the configuration files read.
	Files    []string  `json:"files"`
	Version  string    `json:"asterisk_version,omitempty"`
	Findings []Finding `json:"findings"`
}

// Max returns the highest severity found, and false when nothing was found.
func (r *Report) Max() (Severity, bool) {
	if len(r.Findings) == 0 {
		return Info, false
	}
	m := Info
	for _, f := range r.Findings {
		m = max(m, f.Severity)
	}
	return m, true
}

// ErrNoAsterisk is returned when Dir holds none of Asterisk's files.
var ErrNoAsterisk = errors.New("no Asterisk configuration found")

// audit is one run's state: the files loaded and the findings so far.
type audit struct {
	h        Host
	confs    map[string]*asteriskconf.Config
	findings []Finding
	files    []string
}

// Run audits the host.
func Run(h Host) (*Report, error) {
	a := &audit{h: h, confs: map[string]*asteriskconf.Config{}}
	for _, name := range confFiles {
		a.load(name)
	}
	if len(a.confs) == 0 {
		return nil, fmt.Errorf("%s: %w (no asterisk.conf, sip.conf, pjsip.conf, extensions.conf...)", h.Dir, ErrNoAsterisk)
	}
	dp := newDialplan(a.conf("extensions.conf"))
	for _, c := range checkers {
		c(a, dp)
	}
	slices.SortStableFunc(a.findings, func(x, y Finding) int {
		return cmp.Or(cmp.Compare(y.Severity, x.Severity), cmp.Compare(x.ID, y.ID),
			cmp.Compare(x.File, y.File), cmp.Compare(x.Line, y.Line))
	})
	r := &Report{Dir: h.Dir, Files: a.files, Version: h.Version, Findings: a.findings}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	return r, nil
}

// confFiles are the files the checks read, from Dir.
var confFiles = []string{"asterisk.conf", "modules.conf", "sip.conf", "pjsip.conf", "iax.conf", "extensions.conf",
	"manager.conf", "http.conf", "ari.conf", "voicemail.conf"}

// checkers run in order; each adds its findings.
var checkers = []func(*audit, *dialplan){
	checkReader, checkAsteriskConf, checkFiles, checkPJSIP, checkSIP, checkIAX, checkDialplan,
	checkManager, checkHTTP, checkARI, checkVoicemail, checkFreePBX, checkRelease,
}

func (a *audit) load(name string) {
	l := &asteriskconf.Loader{FS: a.h.FS, Dir: a.h.Dir}
	c, err := l.Load(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return
	case err != nil:
		a.add("CONF-UNREADABLE", asteriskconf.Pos{File: a.h.Dir + "/" + name}, "%v", err)
		return
	}
	a.confs[name] = c
	for _, f := range c.Files {
		if !slices.Contains(a.files, f) {
			a.files = append(a.files, f)
		}
	}
}

// conf returns a loaded file, or an empty one.
func (a *audit) conf(name string) *asteriskconf.Config {
	if c := a.confs[name]; c != nil {
		return c
	}
	return &asteriskconf.Config{}
}

// add records a finding of check id at pos, with its usual severity.
func (a *audit) add(id string, pos asteriskconf.Pos, format string, args ...any) {
	a.addSev(id, -1, pos, format, args...)
}

// addSev records a finding with severity sev (-1: the check's).
func (a *audit) addSev(id string, sev Severity, pos asteriskconf.Pos, format string, args ...any) {
	c, ok := checkByID[id]
	if !ok {
		panic("audit: unknown check " + id) // a programmer's mistake
	}
	if sev < 0 {
		sev = c.Severity
	}
	a.findings = append(a.findings, Finding{ID: id, Severity: sev, File: pos.File, Line: pos.Line,
		Detail: fmt.Sprintf(format, args...), Title: c.Title, Why: c.Why, Fix: c.Fix, FreePBX: c.FreePBX, Source: c.Source})
}

// weak records a weak-secret finding of the account known by names.
func (a *audit) weak(id string, sev Severity, pos asteriskconf.Pos, names []string, format string, args ...any) {
	a.addSev(id, sev, pos, format, args...)
	var accounts []string
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" && !slices.Contains(accounts, n) {
			accounts = append(accounts, n)
		}
	}
	a.findings[len(a.findings)-1].Accounts = accounts
}

// WeakAccounts returns the accounts whose secret a finding calls weak
// (SIP, IAX2, AMI and ARI logins), by every name they log in as.
func (r *Report) WeakAccounts() map[string]bool {
	weak := map[string]bool{}
	for _, f := range r.Findings {
		for _, n := range f.Accounts {
			weak[n] = true
		}
	}
	return weak
}

var checkByID = func() map[string]Check {
	m := map[string]Check{}
	for _, c := range Checks {
		if _, dup := m[c.ID]; dup {
			panic("audit: duplicate check " + c.ID)
		}
		m[c.ID] = c
	}
	return m
}()

// Clean makes text from a config file safe to print on a terminal: control
// characters (escape sequences, carriage returns, bidi overrides) become
// \xNN or \u escapes, and it is cut to max runes.
func Clean(s string, limit int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n >= limit {
			b.WriteString("…")
			break
		}
		n++
		switch {
		case r == '\uFFFD':
			b.WriteString(`\ufffd`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r >= 0x80 && r < 0xa0, r >= 0x200b && r <= 0x200f, r >= 0x202a && r <= 0x202e,
			r >= 0x2066 && r <= 0x2069, r == 0x2028, r == 0x2029, r == 0xfeff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// CleanReport returns a copy of r with every text field from config files
// cleaned (see Clean).
func CleanReport(r *Report) *Report {
	out := *r
	out.Files = make([]string, len(r.Files))
	for i, f := range r.Files {
		out.Files[i] = Clean(f, 512)
	}
	out.Version = Clean(r.Version, 64)
	out.Findings = make([]Finding, len(r.Findings))
	for i, f := range r.Findings {
		f.File = Clean(f.File, 512)
		f.Detail = Clean(f.Detail, 400)
		if f.Accounts != nil {
			accounts := make([]string, len(f.Accounts))
			for j, a := range f.Accounts {
				accounts[j] = Clean(a, 128)
			}
			f.Accounts = accounts
		}
		out.Findings[i] = f
	}
	return &out
}
