package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/cluster"
	"github.com/sipguard/sipguard/duration"
	"github.com/sipguard/sipguard/feeds"
	"github.com/sipguard/sipguard/firewall"
	"github.com/sipguard/sipguard/journal"
	"github.com/sipguard/sipguard/notify"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/parsers/custom"
)

// FieldError is a problem with one key. Key is its path from the section
// validated ("max_retry", "listen[1]", "pattern[0].regex"; "" for the
// section as a whole); Config.Validate gives full paths
// ("source[0].listen[1]").
type FieldError struct {
	Key string
	Err error
}

func (e FieldError) Error() string {
	if e.Key == "" {
		return e.Err.Error()
	}
	return e.Key + ": " + e.Err.Error()
}

func (e FieldError) Unwrap() error { return e.Err }

// problems collects the FieldErrors of a validation.
type problems []FieldError

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, FieldError{Key: key, Err: fmt.Errorf(format, args...)})
}

// err adds err as the problem of key, keeping its type for errors.As.
func (p *problems) err(key string, err error) {
	*p = append(*p, FieldError{Key: key, Err: err})
}

// atLeastOne checks a count.
func (p *problems) atLeastOne(key string, n int) {
	if n < 1 {
		p.add(key, "must be at least 1 (got %d)", n)
	}
}

// positive checks a duration.
func (p *problems) positive(key string, d Duration) {
	if d <= 0 {
		p.add(key, "must be positive")
	}
}

// in adds the problems of the table at path.
func (p *problems) in(path string, errs []FieldError) {
	for _, e := range errs {
		if e.Key != "" {
			e.Key = path + "." + e.Key
		} else {
			e.Key = path
		}
		*p = append(*p, e)
	}
}

// Validate checks every section, and what sections say of each other
// (unique names, the parsers sources use, the rules the cluster shares). It
// also compiles the [[parser]] tables for ParserFactory.
func (c *Config) Validate() []FieldError {
	var p problems
	p.in("daemon", c.Daemon.Validate())
	p.in("firewall", c.Firewall.Validate())
	p.in("engine", c.Engine.Validate())
	p.in("allow", c.Allow.Validate())
	p.in("policy", c.Policy.Validate())
	c.compileParsers(&p)
	p.in("compromise", c.Compromise.Validate())
	p.in("metrics", c.Metrics.Validate())
	p.in("fraud", c.Fraud.Validate())
	p.in("audit", c.Audit.Validate())
	c.validateWire(&p)
	p.in("geoip", c.GeoIP.Validate())
	if len(c.Policy.AllowCountries) > 0 && c.GeoIP.Database == "" {
		p.add("policy.allow_countries", "needs a country database: set [geoip] database")
	}
	if c.Compromise.OnNewCountry == "alert" && c.GeoIP.Database == "" {
		p.add("compromise.on_new_country", "needs a country database: set [geoip] database")
	}
	rules := []string{"manual", "compromise"}
	for _, r := range c.Rules {
		rules = append(rules, r.Name)
	}
	p.in("cluster", c.Cluster.Validate(rules))
	p.in("trunks", c.TrunkDefaults.Validate())
	array(&p, "trunk", "trunk", c.Trunks, func(t TrunkConfig) string { return t.Name }, TrunkConfig.Validate)
	array(&p, "feed", "feed", c.Feeds, func(f FeedConfig) string { return f.Name }, FeedConfig.Validate)
	array(&p, "notify", "[[notify]]", c.Notify, func(n NotifyConfig) string { return n.Name }, NotifyConfig.Validate)
	array(&p, "source", "source", c.Sources, func(s SourceConfig) string { return s.Name }, c.validateSource)
	if len(c.Rules) == 0 {
		p.add("rule", "at least one [[rule]] is needed")
	}
	array(&p, "rule", "rule", c.Rules, func(r RuleConfig) string { return r.Name }, RuleConfig.Validate)
	return p
}

// array checks each table of an array (validate), and that no two have
// the same name; what says what they are in that message ("feed").
func array[T any](p *problems, key, what string, tables []T, name func(T) string, validate func(T) []FieldError) {
	seen := map[string]bool{}
	for i, t := range tables {
		path := fmt.Sprintf("%s[%d]", key, i)
		if n := name(t); n != "" && seen[n] {
			p.add(path+".name", "%q is used by another %s", n, what)
		}
		seen[name(t)] = true
		p.in(path, validate(t))
	}
}

// Validate checks [daemon].
func (d DaemonConfig) Validate() []FieldError {
	var p problems
	switch d.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		p.add("log_level", "%q is not one of debug, info, warn, error", d.LogLevel)
	}
	if d.StateDir == "" {
		p.add("state_dir", "must not be empty")
	}
	if d.Socket == "" {
		p.add("socket", "must not be empty")
	}
	p.positive("manual_ban_time", d.ManualBanTime)
	if time.Duration(d.ManualBanTime) > bans.MaxDuration {
		p.add("manual_ban_time", "%s is longer than the longest manual ban, %s", duration.Format(time.Duration(d.ManualBanTime)), duration.Format(bans.MaxDuration))
	}
	return p
}

// validTable reports whether s can name the nftables table: 1-32
// letters, digits or _. (A loop, not a regexp compiled at every start.)
func validTable(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Validate checks [firewall].
func (f FirewallConfig) Validate() []FieldError {
	var p problems
	switch f.Backend {
	case "nftables", "dry-run":
	default:
		p.add("backend", "%q is not one of nftables, dry-run", f.Backend)
	}
	if !validTable(f.Table) {
		p.add("table", "%q must be 1-32 letters, digits or _", f.Table)
	}
	if len(f.Hooks) == 0 {
		p.add("hooks", "needs \"input\", \"forward\" or both")
	}
	seen := map[string]bool{}
	for i, h := range f.Hooks {
		if h != "input" && h != "forward" || seen[h] {
			p.add(fmt.Sprintf("hooks[%d]", i), "%q: each of \"input\" and \"forward\" at most once", h)
		}
		seen[h] = true
	}
	validatePorts(&p, f.Ports)
	return p
}

// validatePorts checks a list of ports, as [firewall] and [[rule]] write
// them.
func validatePorts(p *problems, ports []string) {
	for i, port := range ports {
		if _, err := firewall.ParsePort(port); err != nil {
			p.add(fmt.Sprintf("ports[%d]", i), "%v", err)
		}
	}
}

// Validate checks [policy].
func (pc PolicyConfig) Validate() []FieldError {
	var p problems
	switch pc.Mode {
	case firewall.PolicyOpen, firewall.PolicyStrict, firewall.PolicyResponsive:
	default:
		p.add("mode", "%q is not one of open, strict, responsive", pc.Mode)
	}
	if pc.Mode != firewall.PolicyOpen && len(pc.SIPPorts) == 0 {
		p.add("sip_ports", "mode %q needs at least one port", pc.Mode)
	}
	for i, port := range pc.SIPPorts {
		if _, err := firewall.ParsePort(port); err != nil {
			p.add(fmt.Sprintf("sip_ports[%d]", i), "%v", err)
		}
	}
	if _, err := firewall.ParseRate(pc.Rate); err != nil {
		p.add("rate", "%v", err)
	}
	p.positive("learn_for", pc.LearnFor)
	seen := map[string]bool{}
	for i, c := range pc.AllowCountries {
		key := fmt.Sprintf("allow_countries[%d]", i)
		switch {
		case len(c) != 2 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z':
			p.add(key, "%q is not a country code: two capital letters (ISO 3166-1 alpha-2), such as \"DE\"", c)
		case seen[c]:
			p.add(key, "%q is listed twice", c)
		}
		seen[c] = true
	}
	return p
}

// Validate checks [engine].
func (e EngineConfig) Validate() []FieldError {
	var p problems
	if e.IPv6Prefix < 32 || e.IPv6Prefix > 128 {
		p.add("ipv6_prefix", "%d is out of range 32-128", e.IPv6Prefix)
	}
	if e.MaxTracked < 1 {
		p.add("max_tracked", "%d must be at least 1", e.MaxTracked)
	}
	if e.History < 0 {
		p.add("history", "must not be negative")
	}
	return p
}

// Validate checks [allow].
func (a AllowConfig) Validate() []FieldError {
	var p problems
	for i, s := range a.Addresses {
		_, err := target(s)
		var hostBits *bans.HostBitsError
		switch {
		case err == nil || isHostName(s):
		case errors.As(err, &hostBits):
			p.err(fmt.Sprintf("addresses[%d]", i), err)
		default:
			p.add(fmt.Sprintf("addresses[%d]", i), "%q is not an IP address, CIDR or host name", s)
		}
	}
	return p
}

// target reads an address or a network (bans.ParseTarget). A network with
// host bits set is refused: "10.1.2.3/8" is a typo for either 10.0.0.0/8
// or 10.1.2.3.
func target(s string) (netip.Prefix, error) {
	p, err := bans.ParseTarget(s)
	var hostBits *bans.HostBitsError
	if err != nil && !errors.As(err, &hostBits) {
		return p, fmt.Errorf("%q is not an IP address or CIDR", s)
	}
	return p, err
}

// Validate checks a [[source]]; Config.Validate also checks its parser
// and that its name is unique.
func (s SourceConfig) Validate() []FieldError {
	var p problems
	if s.Name == "" {
		p.add("name", "missing")
	}
	journald := len(s.Units) > 0 || len(s.Commands) > 0 || len(s.UIDs) > 0 || s.Namespace != ""
	if journald && s.Type != "journald" {
		p.add("units", "units, commands, uids and namespace are for type = \"journald\" sources")
	}
	switch s.Type {
	case "file":
		if s.Path == "" {
			p.add("path", "missing")
		}
		if len(s.Listen) > 0 || len(s.Senders) > 0 {
			p.add("listen", "listen and senders are for type = \"syslog\" sources")
		}
	case "journald":
		if s.Path != "" {
			p.add("path", "a journald source has no path: it reads the journal's messages of units or commands")
		}
		if len(s.Listen) > 0 || len(s.Senders) > 0 {
			p.add("listen", "listen and senders are for type = \"syslog\" sources")
		}
		s.validateJournal(&p)
	case "syslog":
		if s.Path != "" {
			p.add("path", "a syslog source has no path: it listens (listen = [...])")
		}
		if len(s.Listen) == 0 {
			p.add("listen", "missing: e.g. [\"udp://0.0.0.0:514\"]")
		}
		for i, l := range s.Listen {
			if err := checkListen(l); err != nil {
				p.err(fmt.Sprintf("listen[%d]", i), err)
			}
		}
		if len(s.Senders) == 0 {
			p.add("senders", "missing: the addresses or networks allowed to send (anything else is dropped)")
		}
		for i, a := range s.Senders {
			if _, err := target(a); err != nil {
				p.err(fmt.Sprintf("senders[%d]", i), err)
			}
		}
	default:
		p.add("type", "%q is not \"file\", \"syslog\" or \"journald\"", s.Type)
	}
	if s.Timezone != "" {
		if _, err := time.LoadLocation(s.Timezone); err != nil {
			p.add("timezone", "unknown time zone %q", s.Timezone)
		}
	}
	if s.Start != "end" && s.Start != "beginning" {
		p.add("start", "%q is not \"end\" or \"beginning\"", s.Start)
	}
	return p
}

// validateJournal checks the match of a journald source (package journal
// checks most of it).
func (s SourceConfig) validateJournal(p *problems) {
	for i, u := range s.UIDs {
		if u < 0 || u >= 1<<32-1 {
			p.add(fmt.Sprintf("uids[%d]", i), "%d is not a user id", u)
		}
	}
	for _, e := range unjoin(s.JournalMatch().Validate()) {
		var fe *journal.FieldError
		switch {
		case !errors.As(e, &fe):
			p.err("", e)
		case strings.HasPrefix(fe.Key, "uids["):
			// Reported above, as written.
		default:
			p.err(fe.Key, fe.Err)
		}
	}
}

// validateSource checks a [[source]] and the parser it uses.
func (c *Config) validateSource(s SourceConfig) []FieldError {
	p := problems(s.Validate())
	switch {
	case s.Parser == "":
		p.add("parser", "missing (known: %s)", strings.Join(c.ParserNames(), ", "))
	case isCallParser(s.Parser):
		// A call log, for the [fraud] rules.
		if s.Type != "file" {
			p.add("parser", "%s reads a call log: a source of type \"file\"", s.Parser)
		}
		if !c.Fraud.Enabled {
			p.add("parser", "%s reads calls for the [fraud] rules: set [fraud] enabled = true", s.Parser)
		}
	case !c.KnownParser(s.Parser) && !c.declaresParser(s.Parser):
		// A [[parser]] that failed to compile has its own errors.
		p.add("parser", "unknown parser %q (known: %s)", s.Parser, strings.Join(c.ParserNames(), ", "))
	}
	return p
}

// checkListen reads "udp://0.0.0.0:514", "tcp://[::]:6514".
func checkListen(s string) error {
	scheme, addr, ok := strings.Cut(s, "://")
	if !ok || scheme != "udp" && scheme != "tcp" {
		return fmt.Errorf("%q: write udp://ADDRESS:PORT or tcp://ADDRESS:PORT", s)
	}
	if _, err := netip.ParseAddrPort(addr); err != nil {
		return fmt.Errorf("%q: %v", s, err)
	}
	return nil
}

// Validate checks a [[rule]]; Config.Validate checks that its name is
// unique.
func (r RuleConfig) Validate() []FieldError {
	var p problems
	switch {
	case r.Name == "":
		p.add("name", "missing")
	case bans.Reserved(r.Name):
		// list, metrics and the bans file would take its bans for manual
		// bans, a feed's entries or adopted ones.
		p.add("name", "%q is reserved for bans no rule decides (manual, adopted, feed:NAME)", r.Name)
	case r.Name == "compromise" || r.Name == "fraud":
		p.add("name", "%q is the rule name of [%s] bans", r.Name, r.Name)
	}
	for i, k := range r.Events {
		if _, err := parsers.ParseKind(k); err != nil {
			p.err(fmt.Sprintf("events[%d]", i), err)
		}
	}
	p.atLeastOne("max_retry", r.MaxRetry)
	p.positive("find_time", r.FindTime)
	p.positive("ban_time", r.BanTime)
	if r.Factor < 1 || math.IsInf(r.Factor, 0) || math.IsNaN(r.Factor) {
		p.add("factor", "must be at least 1 (1 disables escalation), got %v", r.Factor)
	}
	if r.MaxBanTime != 0 && r.MaxBanTime < r.BanTime {
		p.add("max_ban_time", "%s is shorter than ban_time %s", r.MaxBanTime, r.BanTime)
	}
	validatePorts(&p, r.Ports)
	return p
}

// compileParsers compiles the [[parser]] tables into c.custom; a table
// named like a built-in parser or another table is refused.
func (c *Config) compileParsers(p *problems) {
	c.custom = map[string]*custom.Compiled{}
	for i, pc := range c.Parsers {
		key := fmt.Sprintf("parser[%d]", i)
		if parsers.Known(pc.Name) {
			p.add(key+".name", "%q is a built-in parser", pc.Name)
			continue
		}
		if _, dup := c.custom[pc.Name]; dup {
			p.add(key+".name", "%q is used by another parser", pc.Name)
			continue
		}
		compiled, errs := pc.compile()
		p.in(key, errs)
		if compiled != nil {
			c.custom[pc.Name] = compiled
		}
	}
}

// Validate checks a [[parser]] table: it compiles its patterns and runs
// them on their examples (package parsers/custom).
func (pc ParserConfig) Validate() []FieldError {
	_, errs := pc.compile()
	return errs
}

func (pc ParserConfig) compile() (*custom.Compiled, []FieldError) {
	spec := custom.Spec{Name: pc.Name, Timestamp: pc.Timestamp}
	for _, pt := range pc.Patterns {
		spec.Patterns = append(spec.Patterns, custom.PatternSpec{Kind: pt.Kind, Service: pt.Service, Regex: pt.Regex, Examples: pt.Example})
	}
	compiled, err := custom.Compile(spec)
	var p problems
	for _, e := range unjoin(err) {
		var ce *custom.Error
		key := ""
		if errors.As(e, &ce) {
			key = ce.Field
			if ce.Pattern >= 0 {
				key = fmt.Sprintf("pattern[%d].%s", ce.Pattern, ce.Field)
			}
		}
		p.err(key, e)
	}
	return compiled, p
}

// unjoin returns the errors joined in err (errors.Join), none for nil.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// Validate checks [compromise].
func (c CompromiseConfig) Validate() []FieldError {
	var p problems
	switch c.OnSuccess {
	case "off", "alert", "ban":
	default:
		p.add("on_success_after_failures", "%q is not one of off, alert, ban", c.OnSuccess)
	}
	switch c.OnNewCountry {
	case "", "off", "alert":
	default:
		p.add("on_new_country", "%q is not one of off, alert", c.OnNewCountry)
	}
	p.atLeastOne("min_failures", c.MinFailures)
	p.positive("window", c.Window)
	p.positive("ban_time", c.BanTime)
	return p
}

// Validate checks [metrics].
func (m MetricsConfig) Validate() []FieldError {
	var p problems
	if m.Listen != "" {
		if _, _, err := net.SplitHostPort(m.Listen); err != nil {
			p.add("listen", "%q: write HOST:PORT, e.g. \"127.0.0.1:9477\" (empty: no metrics)", m.Listen)
		}
	}
	return p
}

// Validate checks a [[feed]] (package feeds checks most of it);
// Config.Validate checks that its name is unique.
func (f FeedConfig) Validate() []FieldError {
	var p problems
	for _, e := range unjoin(f.Feed().Validate()) {
		var fe *feeds.FieldError
		if errors.As(e, &fe) {
			p.err(fe.Field, fe.Err)
		} else {
			p.err("", e)
		}
	}
	if time.Duration(f.Expire) < time.Minute {
		p.add("expire", "%s is shorter than 1m", time.Duration(f.Expire))
	}
	return p
}

// Validate checks a [[notify]] (package notify checks most of it);
// Config.Validate checks that its name is unique.
func (n NotifyConfig) Validate() []FieldError {
	var p problems
	var err error
	switch {
	case (n.URL == "") == (len(n.Command) == 0):
		p.add("url", "set url (a webhook) or command (a program), one of them")
		return p
	case n.URL != "":
		var h notify.Webhook
		if h, err = n.webhook(); err != nil {
			p.err("headers", err)
			return p
		}
		err = h.Validate()
	case len(n.Headers) > 0 || n.Retries != defaultRetries:
		p.add("", "headers and retries are for webhooks (url)")
		return p
	default:
		err = n.command().Validate()
	}
	for _, e := range unjoin(err) {
		var fe *notify.FieldError
		switch {
		case !errors.As(e, &fe):
			p.err("", e)
		case fe.Field == "argv":
			// The argument at fault is named in the message.
			p.err("command", fe)
		default:
			p.err(fe.Field, fe.Err)
		}
	}
	return p
}

// Validate checks [cluster] when it is on (servers set). rules are the
// names cluster.rules may use.
func (c ClusterConfig) Validate(rules []string) []FieldError {
	var p problems
	if len(c.Servers) == 0 {
		return nil
	}
	for i, s := range c.Servers {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || !slices.Contains([]string{"nats", "tls", "ws", "wss"}, u.Scheme) {
			p.add(fmt.Sprintf("servers[%d]", i), "%q: write nats://HOST:4222 or tls://HOST:4222", s)
		}
	}
	if n := c.Node().Name; !cluster.ValidName(n) {
		what := "name"
		if c.Name == "" {
			what = "the host name"
		}
		p.add("name", "%s %q is not a node name: set name to letters, digits, - and _ (at most 64)", what, n)
	}
	auth := 0
	for _, k := range []string{c.Creds, c.NKey, c.User} {
		if k != "" {
			auth++
		}
	}
	if auth > 1 {
		p.add("creds", "set one of creds, nkey, user (and password)")
	}
	if c.Password != "" && c.User == "" {
		p.add("password", "password without user")
	}
	if (c.Cert == "") != (c.Key == "") {
		p.add("cert", "cert and key go together")
	}
	for _, f := range []struct{ key, path string }{{"creds", c.Creds}, {"nkey", c.NKey}, {"ca", c.CA}, {"cert", c.Cert}, {"key", c.Key}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			p.err(f.key, err)
		}
	}
	if !cluster.ValidName(c.Stream) {
		p.add("stream", "%q: letters, digits, - and _", c.Stream)
	}
	if c.Subject == "" || strings.ContainsAny(c.Subject, " \t*>") || strings.HasPrefix(c.Subject, ".") || strings.HasSuffix(c.Subject, ".") {
		p.add("subject", "%q is not a subject prefix such as \"sipguard\"", c.Subject)
	}
	for i, r := range c.Rules {
		if !slices.Contains(rules, r) {
			p.add(fmt.Sprintf("rules[%d]", i), "%q is no rule (rules: %s)", r, strings.Join(rules, ", "))
		}
	}
	p.atLeastOne("queue", c.Queue)
	if !c.Share && !c.Accept {
		p.add("share", "share and accept are both false: remove servers to leave the cluster")
	}
	for _, f := range []struct {
		key string
		n   int
	}{{"max_peer_bans", c.MaxPeerBans}, {"max_peer_networks", c.MaxPeerNetworks}, {"max_peer_space4", c.MaxPeerSpace4},
		{"max_peer_space6", c.MaxPeerSpace6}, {"max_peer_bans_per_minute", c.MaxPeerPerMinute},
		{"max_peer_unbans", c.MaxPeerUnbans}} {
		if f.n < 0 {
			p.add(f.key, "must not be negative (0: no limit)")
		}
	}
	return p
}

// declaresParser reports whether a [[parser]] table is called name, even
// one that did not compile.
func (c *Config) declaresParser(name string) bool {
	for _, pc := range c.Parsers {
		if pc.Name == name {
			return true
		}
	}
	return false
}

// KnownParser reports whether name is a built-in parser or a [[parser]]
// of the config.
func (c *Config) KnownParser(name string) bool {
	_, ok := c.custom[name]
	return ok || parsers.Known(name)
}

// ParserNames lists the parsers sources may use, sorted.
func (c *Config) ParserNames() []string {
	names := parsers.Names()
	for n := range c.custom {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
