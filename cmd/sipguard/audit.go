package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/sipguard/sipguard/audit"
	"github.com/sipguard/sipguard/firewall"
)

var auditCommand = command{"audit", "find weak PBX settings and passwords (Asterisk, FreePBX)", (*Main).audit}

const auditSynopsis = `audit [--asterisk-dir DIR] [--json] [--min-severity S] [--fail-on S] [--asterisk-version V] [--root DIR] [-c FILE]

Reads Asterisk's configuration (FreePBX's generated files too) the way
Asterisk does, includes and templates followed, and reports the settings
and passwords that make the PBX easy to break into: guest or anonymous
calls that reach outbound dialling, weak SIP, IAX2, AMI, ARI and voicemail
secrets, AMI and HTTP open to every address, #exec, live_dangerously, an
Asterisk release past its end of life, and sipguard's own logs it cannot
read. Each finding has its file:line, why it matters, how to fix it and the
guide it comes from; secrets are never printed, only their length.
It changes nothing and runs nothing but "asterisk -V" (the version; else it
is read from the header Asterisk writes atop its logs).

Exit code 1 when a finding is at or above --fail-on (default high); the
checks are listed in docs/audit.md.`

func (m *Main) audit(_ context.Context, args []string) error {
	fs := m.flagSet("audit", auditSynopsis)
	dir := fs.String("asterisk-dir", "/etc/asterisk", "Asterisk's configuration `DIR`")
	fs.StringVar(dir, "config-dir", "/etc/asterisk", "the same as --asterisk-dir `DIR`")
	root := fs.String("root", "/", "read the host's files under `DIR` (an image or a backup mounted there)")
	asJSON := fs.Bool("json", false, "print JSON")
	minSev := fs.String("min-severity", "info", "show findings at or above `SEVERITY` (info, low, medium, high, critical)")
	failOn := fs.String("fail-on", "high", "exit 1 when a finding is at or above `SEVERITY`")
	version := fs.String("asterisk-version", "", "Asterisk's `VERSION` (default: asterisk -V, else its logs)")
	cfgPath := fs.String("c", "", "sipguard config `FILE` whose sources and allowlist are checked")
	if err := m.parseNoArgs(fs, args); err != nil {
		return err
	}
	show, err := audit.ParseSeverity(*minSev)
	if err != nil {
		return usagef("--min-severity: %v", err)
	}
	fail, err := audit.ParseSeverity(*failOn)
	if err != nil {
		return usagef("--fail-on: %v", err)
	}
	if !strings.HasPrefix(*dir, "/") {
		return usagef("--asterisk-dir must be an absolute path (got %q)", *dir)
	}
	h := audit.Host{FS: os.DirFS(*root), Dir: *dir, Version: *version, VersionFrom: "--asterisk-version", Now: m.Now()}
	if h.Version == "" && *root == "/" {
		h.Version, h.VersionFrom = asteriskVersion()
	}
	if h.Version == "" {
		h.Version, h.VersionFrom = audit.LogVersion(h.FS, audit.AsteriskLogs)
	}
	if self, err := m.selfAudit(*cfgPath); err == nil {
		h.Self = self
	} else {
		fmt.Fprintf(m.Stderr, "warning: sipguard's own config not checked: %v\n", err)
	}
	r, err := audit.Run(h)
	if err != nil {
		return err
	}
	r = audit.CleanReport(r)
	worst, found := r.Max()
	shown := *r
	shown.Findings = nil
	for _, f := range r.Findings {
		if f.Severity >= show {
			shown.Findings = append(shown.Findings, f)
		}
	}
	if shown.Findings == nil {
		shown.Findings = []audit.Finding{}
	}
	if *asJSON {
		if err := printJSON(m.Stdout, &shown); err != nil {
			return err
		}
	} else {
		printAudit(m.Stdout, &shown, len(r.Findings))
	}
	if found && worst >= fail {
		n := 0
		for _, f := range r.Findings {
			if f.Severity >= fail {
				n++
			}
		}
		return fmt.Errorf("%d %s at or above %s (--fail-on)", n, plural(n, "finding"), fail)
	}
	return nil
}

// selfAudit gathers what the audit checks of sipguard's own config.
func (m *Main) selfAudit(path string) (*audit.Self, error) {
	cfg, err := m.loadConfig(path)
	if err != nil {
		return nil, err
	}
	self := &audit.Self{File: cfg.File, Unreadable: unreadable(cfg), Allow: cfg.Allow.Addresses, Trunks: len(cfg.Trunks),
		Policy: cfg.Policy.Mode}
	for _, s := range cfg.Policy.SIPPorts {
		if p, err := firewall.ParsePort(s); err == nil { // checked with the config
			self.SIPPorts = append(self.SIPPorts, audit.PortRange{Proto: p.Proto, First: p.Port, Last: p.Last})
		}
	}
	if m.HostAddrs != nil {
		prefixes, err := m.HostAddrs()
		if err != nil {
			return nil, fmt.Errorf("the host's addresses: %w", err)
		}
		for _, p := range prefixes {
			if p.IsSingleIP() {
				self.HostAddrs = append(self.HostAddrs, p.Addr())
			}
		}
	}
	return self, nil
}

// Compiled when first needed, not at every start of every command.
var asteriskV = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^Asterisk (\S+)`) })

// asteriskVersion asks the installed asterisk binary its version.
func asteriskVersion() (version, from string) {
	bin, err := exec.LookPath("asterisk")
	if err != nil {
		return "", ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-V").Output()
	if err != nil {
		return "", ""
	}
	if m := asteriskV().FindSubmatch(out); m != nil {
		return string(m[1]), bin + " -V"
	}
	return "", ""
}

// printAudit prints the findings grouped by severity, worst first; total
// counts those --min-severity hides too.
func printAudit(w io.Writer, r *audit.Report, total int) {
	version := "unknown"
	if r.Version != "" {
		version = r.Version
	}
	fmt.Fprintf(w, "Asterisk configuration %s: %d %s read, Asterisk %s\n", r.Dir, len(r.Files), plural(len(r.Files), "file"), version)
	if total == 0 {
		fmt.Fprintln(w, "no findings")
		return
	}
	counts := map[audit.Severity]int{}
	for _, f := range r.Findings {
		counts[f.Severity]++
	}
	var sev audit.Severity = -1
	for _, f := range r.Findings {
		if f.Severity != sev {
			sev = f.Severity
			fmt.Fprintf(w, "\n%s (%d)\n", strings.ToUpper(sev.String()), counts[sev])
		}
		where := f.Where()
		if where == "" {
			where = "-"
		}
		fmt.Fprintf(w, "  %s  %s  %s\n", f.ID, where, f.Title)
		fmt.Fprintf(w, "      %s\n", f.Detail)
		fmt.Fprintf(w, "      why: %s\n", f.Why)
		fmt.Fprintf(w, "      fix: %s\n", f.Fix)
		if f.FreePBX != "" {
			fmt.Fprintf(w, "      FreePBX: %s\n", f.FreePBX)
		}
		fmt.Fprintf(w, "      source: %s\n", f.Source)
	}
	var parts []string
	for s := audit.Critical; s >= audit.Info; s-- {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	fmt.Fprintf(w, "\n%d %s shown: %s", len(r.Findings), plural(len(r.Findings), "finding"), strings.Join(parts, ", "))
	if hidden := total - len(r.Findings); hidden > 0 {
		fmt.Fprintf(w, " (%d below --min-severity hidden)", hidden)
	}
	fmt.Fprintln(w)
}
