package audit

import (
	"bufio"
	"bytes"
	"io/fs"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/sipguard/sipguard/asteriskconf"
)

// truthy and falsy follow Asterisk's ast_true and ast_false.
func truthy(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "yes", "true", "y", "t", "1", "on":
		return true
	}
	return false
}

func falsy(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "no", "false", "n", "f", "0", "off":
		return true
	}
	return false
}

// at is where a setting is, or its section when it is not set.
func at(s *asteriskconf.Section, name string) asteriskconf.Pos {
	if v, ok := s.Last(name); ok {
		return v.Pos
	}
	return s.Pos
}

func dash(s string) string {
	if s == "" {
		return "(not set)"
	}
	return s
}

// fileAt is a position naming only a file.
func fileAt(file string) asteriskconf.Pos { return asteriskconf.Pos{File: file} }

// listensAll is true for a bind address that takes connections from every
// network: unspecified (0.0.0.0, ::) or a public address.
func listensAll(bind string) bool {
	host := strings.TrimSpace(bind)
	if ap, err := netip.ParseAddrPort(host); err == nil {
		host = ap.Addr().String()
	}
	host = strings.Trim(host, "[]")
	if i := strings.LastIndexByte(host, ':'); i >= 0 && strings.Count(host, ":") == 1 {
		host = host[:i]
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return addr.IsUnspecified() || (addr.IsGlobalUnicast() && !addr.IsPrivate())
}

// guest reports an unauthenticated entry whose context reaches outbound
// dialling, as GUEST-OUTBOUND.
func (a *audit) guest(dp *dialplan, what, ctx string, pos asteriskconf.Pos) {
	if chain, dial, ok := dp.reach(ctx); ok {
		a.add("GUEST-OUTBOUND", pos, "%s lands in context %s, which reaches outbound dialling (%s; dials out at %s)",
			what, ctx, strings.Join(chain, " -> "), dial)
	}
}

func checkReader(a *audit, _ *dialplan) {
	exec := truthy(value(a.conf("asterisk.conf").Section("options"), "execincludes"))
	for _, name := range confFiles {
		c := a.confs[name]
		if c == nil {
			continue
		}
		for _, p := range c.Problems {
			a.add("CONF-PROBLEM", p.Pos, "%s", p.Msg)
		}
		for _, e := range c.Execs {
			if exec {
				a.add("CONF-EXEC", e.Pos, "#exec %s runs when %s is read (execincludes=yes)", e.Arg, name)
			} else {
				a.addSev("CONF-EXEC", Low, e.Pos, "#exec %s: not run while execincludes is off, but runs as soon as it is turned on", e.Arg)
			}
		}
	}
}

func checkAsteriskConf(a *audit, _ *dialplan) {
	c := a.confs["asterisk.conf"]
	if c == nil {
		return
	}
	opts := c.Section("options")
	if opts == nil {
		opts = &asteriskconf.Section{Name: "options", Pos: fileAt(c.File)}
	}
	if truthy(opts.Value("live_dangerously")) {
		a.add("AST-LIVE-DANGEROUSLY", at(opts, "live_dangerously"), "live_dangerously=%s in [options]", opts.Value("live_dangerously"))
	}
	if truthy(opts.Value("execincludes")) {
		a.add("AST-EXECINCLUDES", at(opts, "execincludes"), "execincludes=%s in [options]", opts.Value("execincludes"))
	}
	if pid, ok := a.rootProcess(); ok {
		a.add("AST-RUNS-AS-ROOT", fileAt("/proc/"+pid+"/status"), "the running asterisk process (pid %s) has user id 0", pid)
		return
	}
	switch user := opts.Value("runuser"); {
	case user == "root" || user == "0":
		a.add("AST-RUNS-AS-ROOT", at(opts, "runuser"), "runuser=%s", user)
	case user == "" && !a.userElsewhere():
		a.addSev("AST-RUNS-AS-ROOT", Low, opts.Pos, "runuser is not set in asterisk.conf, nor AST_USER in /etc/default/asterisk: Asterisk keeps the user it was started as (root under systemd unless the unit says User=)")
	}
}

// rootProcess finds a running process named asterisk whose real or
// effective user id is 0, in /proc.
func (a *audit) rootProcess() (pid string, ok bool) {
	entries, err := fs.ReadDir(a.h.FS, "proc")
	if err != nil {
		return "", false
	}
	for _, e := range entries {
		if !isDigits(e.Name()) {
			continue
		}
		data, err := fs.ReadFile(a.h.FS, "proc/"+e.Name()+"/status")
		if err != nil {
			continue
		}
		var name, uid string
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "Name:"); ok {
				name = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(line, "Uid:"); ok {
				uid = v
			}
		}
		if f := strings.Fields(uid); name == "asterisk" && len(f) >= 2 && (f[0] == "0" || f[1] == "0") {
			return e.Name(), true
		}
	}
	return "", false
}

// userElsewhere is true when the init configuration names Asterisk's user:
// Debian's /etc/default/asterisk or FreePBX's AMPASTERISKUSER.
func (a *audit) userElsewhere() bool {
	for _, f := range []struct{ file, key string }{{"/etc/default/asterisk", "AST_USER"}, {"/etc/amportal.conf", "AMPASTERISKUSER"}} {
		for _, kv := range a.shellVars(f.file) {
			if kv.key == f.key && kv.value != "" && kv.value != "root" {
				return true
			}
		}
	}
	return false
}

// value is s.Value(name), "" when there is no section s.
func value(s *asteriskconf.Section, name string) string {
	if s == nil {
		return ""
	}
	return s.Value(name)
}

// secretNames are the settings that hold a password in clear text.
var secretNames = map[string]bool{"secret": true, "password": true, "dbsecret": true, "md5secret": true}

func checkFiles(a *audit, _ *dialplan) {
	seen := map[string]bool{}
	report := func(file string) {
		if seen[file] {
			return
		}
		seen[file] = true
		st, err := fs.Stat(a.h.FS, strings.TrimPrefix(file, "/"))
		if err != nil || st.Mode().Perm()&0o004 == 0 {
			return
		}
		a.add("FILE-WORLD-READABLE", fileAt(file), "mode %04o: any local user can read the secrets in it", st.Mode().Perm())
	}
	for _, name := range []string{"sip.conf", "pjsip.conf", "iax.conf", "manager.conf", "ari.conf", "voicemail.conf"} {
		for _, s := range a.conf(name).Sections {
			for _, v := range s.Vars {
				if secretNames[strings.ToLower(v.Name)] && v.Value != "" {
					report(v.Pos.File)
				}
			}
		}
	}
	for _, f := range []string{"/etc/amportal.conf", "/etc/freepbx.conf"} {
		if _, err := fs.Stat(a.h.FS, strings.TrimPrefix(f, "/")); err == nil {
			report(f)
		}
	}
}

// accountNames are the names an account's password must not resemble:
// the section name, the digits in it (1001 of 1001-auth), and the given
// user names.
func accountNames(section string, users ...string) []string {
	names := append([]string{section}, users...)
	if d := leadingDigits().FindString(section); len(d) >= 2 {
		names = append(names, d)
	}
	return names
}

var leadingDigits = lazyRegexp(`\d+`)

func checkPJSIP(a *audit, dp *dialplan) {
	c := a.confs["pjsip.conf"]
	if c == nil {
		return
	}
	byType := map[string][]*asteriskconf.Section{}
	for _, s := range c.Active() {
		t := strings.ToLower(s.Value("type"))
		byType[t] = append(byType[t], s)
	}
	authUsers := map[string][]string{} // auth section -> endpoints using it
	for _, ep := range byType["endpoint"] {
		for _, key := range []string{"auth", "outbound_auth"} {
			for _, name := range strings.Split(ep.Value(key), ",") {
				if name = strings.TrimSpace(name); name != "" {
					authUsers[name] = append(authUsers[name], ep.Name)
				}
			}
		}
	}
	for _, s := range byType["auth"] {
		if t := strings.ToLower(s.Value("auth_type")); t != "" && t != "userpass" && t != "digest" {
			continue // md5 or google_oauth: no clear-text password
		}
		pw, ok := s.Last("password")
		if !ok {
			continue
		}
		names := accountNames(s.Name, append(authUsers[s.Name], s.Value("username"))...)
		if why, sev, weak := weakness(pw.Value, names...); weak {
			a.weak("PJSIP-WEAK-PASSWORD", sev, pw.Pos, append([]string{s.Name, s.Value("username")}, authUsers[s.Name]...),
				"[%s] password %s: %s", s.Name, Mask(pw.Value), why)
		}
	}
	identified := map[string]bool{}
	for _, s := range byType["identify"] {
		if s.Value("match") != "" || s.Value("match_header") != "" {
			identified[s.Value("endpoint")] = true
		}
	}
	for _, ep := range byType["endpoint"] {
		ctx := ep.Value("context")
		if ctx == "" {
			ctx = "default"
		}
		if ep.Name == "anonymous" {
			a.add("PJSIP-ANONYMOUS", ep.Pos, "endpoint [anonymous] takes calls that match no endpoint, into context %s", ctx)
			a.guest(dp, "an anonymous PJSIP call", ctx, at(ep, "context"))
			continue
		}
		if ep.Value("auth") != "" || identified[ep.Name] {
			continue
		}
		if by := strings.ToLower(ep.Value("identify_by")); by != "" && !strings.Contains(by, "username") {
			continue
		}
		a.add("PJSIP-NO-AUTH", ep.Pos, "endpoint [%s] has no auth= and no identify section matching an address (context %s)", ep.Name, ctx)
		a.guest(dp, "a call naming endpoint "+ep.Name+" (no authentication)", ctx, at(ep, "context"))
	}
	checkPJSIPTransports(a, c, byType)
}

func checkPJSIPTransports(a *audit, c *asteriskconf.Config, byType map[string][]*asteriskconf.Section) {
	var public *asteriskconf.Section
	tls := false
	for _, t := range byType["transport"] {
		switch strings.ToLower(t.Value("protocol")) {
		case "tls", "wss":
			tls = true
		case "", "udp", "tcp", "ws":
			if public == nil && listensAll(t.Value("bind")) {
				public = t
			}
		}
	}
	tlsNames := map[string]bool{}
	for _, t := range byType["transport"] {
		if p := strings.ToLower(t.Value("protocol")); p == "tls" || p == "wss" {
			tlsNames[t.Name] = true
		}
	}
	for _, ep := range byType["endpoint"] {
		if me := strings.ToLower(ep.Value("media_encryption")); tlsNames[ep.Value("transport")] && (me == "" || me == "no") {
			a.add("PJSIP-NO-SRTP", at(ep, "transport"), "endpoint [%s] uses TLS transport %s with media_encryption=%s", ep.Name, ep.Value("transport"), dash(me))
		}
	}
	if public != nil && !tls {
		a.add("PJSIP-NO-TLS", at(public, "bind"), "transport [%s] (%s) listens on %s and no transport uses TLS",
			public.Name, strings.ToLower(public.Value("protocol")), public.Value("bind"))
	}
	if len(byType["endpoint"]) == 0 || len(byType["acl"]) > 0 {
		return
	}
	for _, ep := range byType["endpoint"] {
		for _, k := range []string{"acl", "permit", "deny", "contact_acl", "contact_permit", "contact_deny"} {
			if ep.Value(k) != "" {
				return
			}
		}
	}
	pos := fileAt(c.File)
	if public != nil {
		pos = public.Pos
	}
	a.add("PJSIP-NO-ACL", pos, "no type=acl section and no endpoint with acl/permit/deny: every address may register and call")
}

// chanSIPLoaded is false when modules.conf does not load chan_sip, or the
// release has none (21 and later).
func (a *audit) chanSIPLoaded() bool {
	if m := majorOf(a.h.Version); m >= 21 {
		return false
	}
	mods := a.conf("modules.conf").Section("modules")
	if mods == nil {
		return true
	}
	for _, v := range mods.All("noload") {
		if strings.TrimSpace(v.Value) == "chan_sip.so" {
			return false
		}
	}
	if truthy(mods.Value("autoload")) || mods.Value("autoload") == "" {
		return true
	}
	for _, v := range mods.All("load") {
		if strings.TrimSpace(v.Value) == "chan_sip.so" {
			return true
		}
	}
	return false
}

func checkSIP(a *audit, dp *dialplan) {
	c := a.confs["sip.conf"]
	if c == nil || !a.chanSIPLoaded() {
		return
	}
	g := c.Section("general")
	if g == nil {
		g = &asteriskconf.Section{Name: "general", Pos: fileAt(c.File)}
	}
	if v := g.Value("allowguest"); v == "" || truthy(v) {
		how := "allowguest=" + v
		if v == "" {
			how = "allowguest is not set (chan_sip's default is yes)"
		}
		ctx := g.Value("context")
		if ctx == "" {
			ctx = "default"
		}
		a.add("SIP-ALLOWGUEST", at(g, "allowguest"), "%s: unauthenticated calls go to context %s", how, ctx)
		a.guest(dp, "a chan_sip guest call", ctx, at(g, "context"))
	}
	if v := g.Value("alwaysauthreject"); falsy(v) {
		a.add("SIP-ALWAYSAUTHREJECT", at(g, "alwaysauthreject"), "alwaysauthreject=%s", v)
	}
	for _, s := range c.Active() {
		if s.Name == "general" || s.Name == "authentication" {
			continue
		}
		host := strings.ToLower(s.Value("host"))
		if ins := strings.ToLower(s.Value("insecure")); host == "dynamic" && (strings.Contains(ins, "invite") || ins == "very") {
			a.add("SIP-INSECURE", at(s, "insecure"), "[%s] host=dynamic with insecure=%s", s.Name, ins)
		}
		if sec, ok := s.Last("secret"); ok {
			names := accountNames(s.Name, s.Value("username"), s.Value("defaultuser"), s.Value("fromuser"))
			if why, sev, weak := weakness(sec.Value, names...); weak {
				a.weak("SIP-WEAK-SECRET", sev, sec.Pos, []string{s.Name, s.Value("username"), s.Value("defaultuser")},
					"[%s] secret %s: %s", s.Name, Mask(sec.Value), why)
			}
		}
	}
}

func checkIAX(a *audit, dp *dialplan) {
	c := a.confs["iax.conf"]
	if c == nil {
		return
	}
	for _, s := range c.Active() {
		if v := s.Value("requirecalltoken"); falsy(v) {
			a.add("IAX-CALLTOKEN", at(s, "requirecalltoken"), "[%s] requirecalltoken=%s", s.Name, v)
		}
		if s.Name == "general" {
			continue
		}
		t := strings.ToLower(s.Value("type"))
		if s.Name == "guest" && (t == "user" || t == "friend") {
			ctx := s.Value("context")
			if ctx == "" {
				ctx = "default"
			}
			a.add("IAX-GUEST", s.Pos, "[guest] takes unauthenticated IAX2 calls into context %s", ctx)
			a.guest(dp, "an IAX2 guest call", ctx, at(s, "context"))
		}
		if sec, ok := s.Last("secret"); ok {
			if why, sev, weak := weakness(sec.Value, accountNames(s.Name, s.Value("username"))...); weak {
				a.weak("IAX-WEAK-SECRET", sev, sec.Pos, []string{s.Name, s.Value("username")}, "[%s] secret %s: %s", s.Name, Mask(sec.Value), why)
			}
		}
	}
}

func checkDialplan(a *audit, dp *dialplan) {
	for _, ctx := range dp.contexts {
		for _, e := range ctx.exts {
			app := strings.ToLower(e.app)
			if app == "dial" && strings.Contains(e.args, "${EXTEN") && !strings.Contains(strings.ToUpper(e.args), "FILTER(") &&
				(strings.Contains(e.pattern, ".") || strings.Contains(e.pattern, "!")) {
				a.add("DIALPLAN-EXTEN-UNFILTERED", e.pos, "[%s] exten %s: Dial(%s)", ctx.name, e.pattern, e.args)
			}
			if app == "disa" {
				pass, _, _ := strings.Cut(e.args, ",")
				if p := strings.ToLower(strings.TrimSpace(pass)); p == "" || p == "no-password" {
					a.add("DIALPLAN-DISA-NOPASS", e.pos, "[%s] exten %s: DISA(%s)", ctx.name, e.pattern, e.args)
				}
			}
		}
	}
	if g := a.conf("extensions.conf").Section("globals"); g != nil {
		if v, ok := g.Last("ALLOW_SIP_ANON"); ok && truthy(v.Value) {
			a.add("FREEPBX-ALLOW-SIP-ANON", v.Pos, "ALLOW_SIP_ANON=%s in [globals]", v.Value)
		}
	}
}

// dangerousWrite are the AMI write classes that run commands or place
// calls.
var dangerousWrite = []string{"system", "command", "originate", "all"}

func checkManager(a *audit, _ *dialplan) {
	c := a.confs["manager.conf"]
	if c == nil {
		return
	}
	g := c.Section("general")
	if g == nil || !truthy(g.Value("enabled")) {
		return // AMI is off by default
	}
	bind := g.Value("bindaddr")
	open := bind == "" || listensAll(bind)
	for _, s := range c.Active() {
		if s.Name == "general" {
			continue
		}
		if sec, ok := s.Last("secret"); ok {
			if why, sev, weak := weakness(sec.Value, accountNames(s.Name)...); weak {
				a.weak("AMI-WEAK-SECRET", sev, sec.Pos, []string{s.Name}, "AMI user [%s] secret %s: %s", s.Name, Mask(sec.Value), why)
			}
		}
		if open && len(s.All("permit")) == 0 && s.Value("acl") == "" {
			shown := bind
			if shown == "" {
				shown = "0.0.0.0 (the default)"
			}
			a.add("AMI-OPEN", s.Pos, "AMI listens on %s and user [%s] has no permit=", shown, s.Name)
		}
		var classes []string
		for _, w := range s.All("write") {
			for _, cl := range strings.Split(strings.ToLower(w.Value), ",") {
				cl = strings.TrimSpace(cl)
				for _, d := range dangerousWrite {
					if cl == d && !slices.Contains(classes, cl) {
						classes = append(classes, cl)
					}
				}
			}
		}
		if len(classes) > 0 {
			a.add("AMI-DANGEROUS-WRITE", at(s, "write"), "AMI user [%s] write=%s", s.Name, strings.Join(classes, ","))
		}
	}
}

func checkHTTP(a *audit, _ *dialplan) {
	g := a.conf("http.conf").Section("general")
	if g == nil || !truthy(g.Value("enabled")) || truthy(g.Value("tlsenable")) {
		return
	}
	if bind := g.Value("bindaddr"); listensAll(bind) {
		a.add("HTTP-OPEN", at(g, "bindaddr"), "enabled=yes, bindaddr=%s, tlsenable is off", bind)
	}
}

func checkARI(a *audit, _ *dialplan) {
	c := a.confs["ari.conf"]
	if c == nil {
		return
	}
	for _, s := range c.Active() {
		if !strings.EqualFold(s.Value("type"), "user") || strings.EqualFold(s.Value("password_format"), "crypt") {
			continue
		}
		if pw, ok := s.Last("password"); ok {
			if why, sev, weak := weakness(pw.Value, accountNames(s.Name)...); weak {
				a.weak("ARI-WEAK-PASSWORD", sev, pw.Pos, []string{s.Name}, "ARI user [%s] password %s: %s", s.Name, Mask(pw.Value), why)
			}
		}
	}
}

func checkVoicemail(a *audit, _ *dialplan) {
	for _, s := range a.conf("voicemail.conf").Active() {
		switch s.Name {
		case "general", "zonemessages":
			continue
		}
		for _, v := range s.Vars {
			if !isDigits(v.Name) {
				continue
			}
			pin, _, _ := strings.Cut(v.Value, ",")
			pin = strings.TrimLeft(strings.TrimSpace(pin), "-*")
			switch {
			case pin == v.Name:
				a.addSev("VM-WEAK-PIN", High, v.Pos, "[%s] mailbox %s: PIN %s is the mailbox number", s.Name, v.Name, Mask(pin))
			case isDigits(pin) && sequentialPIN(pin):
				a.add("VM-WEAK-PIN", v.Pos, "[%s] mailbox %s: PIN %s is repeated or sequential digits", s.Name, v.Name, Mask(pin))
			case len(pin) < 6:
				a.add("VM-WEAK-PIN", v.Pos, "[%s] mailbox %s: PIN %s is shorter than 6 digits", s.Name, v.Name, Mask(pin))
			}
		}
	}
}

// shellVar is one KEY=value line of a shell-style file.
type shellVar struct {
	key, value string
	line       int
}

// shellVars reads KEY=value lines (amportal.conf, /etc/default/asterisk)
// and PHP $amp_conf['KEY'] = 'value'; lines (freepbx.conf).
func (a *audit) shellVars(file string) []shellVar {
	data, err := fs.ReadFile(a.h.FS, strings.TrimPrefix(file, "/"))
	if err != nil || len(data) > asteriskconf.MaxFileSize {
		return nil
	}
	var out []shellVar
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, asteriskconf.MaxFileSize)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if m := phpVar().FindStringSubmatch(line); m != nil {
			out = append(out, shellVar{key: m[1], value: m[2], line: n})
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			out = append(out, shellVar{key: strings.TrimSpace(k), value: strings.Trim(strings.TrimSpace(v), `"'`), line: n})
		}
	}
	return out
}

var phpVar = lazyRegexp(`^\$amp_conf\[\s*["']([A-Z_]+)["']\s*\]\s*=\s*["']([^"']*)["']`)

func checkFreePBX(a *audit, _ *dialplan) {
	defaults := map[string]string{"AMPMGRPASS": "amp111", "AMPDBPASS": "amp109"}
	for _, file := range []string{"/etc/amportal.conf", "/etc/freepbx.conf"} {
		for _, kv := range a.shellVars(file) {
			if d, ok := defaults[kv.key]; ok && kv.value == d {
				a.add("FREEPBX-DEFAULT-PASS", asteriskconf.Pos{File: file, Line: kv.line}, "%s is FreePBX's published default %s", kv.key, Mask(kv.value))
			}
		}
	}
}

// majorOf returns the major release of an Asterisk version ("20.5.0" ->
// 20, "18.9-cert5" -> 18, "1.8.32.3" -> 1), or 0.
func majorOf(version string) int {
	head, _, _ := strings.Cut(strings.TrimSpace(version), ".")
	n, err := strconv.Atoi(head)
	if err != nil {
		return 0
	}
	return n
}

// lazyRegexp compiles expr on first use: compiling audit's expressions
// at every command's start cost each command, `sipguard scan` included,
// about a millisecond.
func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}
