package main

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/rs/zerolog"

	"github.com/sipguard/sipguard"
	"github.com/sipguard/sipguard/cluster"
	"github.com/sipguard/sipguard/duration"
	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/feeds"
	"github.com/sipguard/sipguard/notify"
	"github.com/sipguard/sipguard/parsers"
	"github.com/sipguard/sipguard/parsers/custom"
)

// DefaultConfigPath is read when no -c is given and it exists; otherwise
// the built-in defaults (the shipped rules.toml) apply.
const DefaultConfigPath = "/etc/sipguard/rules.toml"

// Config is the content of rules.toml. Each field's comment is in the
// shipped rules.toml, which is also the default value of every field.
type Config struct {
	Daemon   DaemonConfig   `toml:"daemon"`
	Firewall FirewallConfig `toml:"firewall"`
	Engine   EngineConfig   `toml:"engine"`
	Allow    AllowConfig    `toml:"allow"`
	Sources  []SourceConfig `toml:"source"`
	Rules    []RuleConfig   `toml:"rule"`
	Parsers  []ParserConfig `toml:"parser"`

	Compromise CompromiseConfig `toml:"compromise"`
	Metrics    MetricsConfig    `toml:"metrics"`
	Feeds      []FeedConfig     `toml:"feed"`
	Notify     []NotifyConfig   `toml:"notify"`
	Cluster    ClusterConfig    `toml:"cluster"`

	// custom holds the compiled [[parser]] tables, by name.
	custom map[string]*custom.Compiled

	// File is where the config was read from ("" for the built-in one).
	File string `toml:"-" json:"-"`
}

type DaemonConfig struct {
	StateDir      string   `toml:"state_dir"`
	Socket        string   `toml:"socket"`
	LogLevel      string   `toml:"log_level"`
	ManualBanTime Duration `toml:"manual_ban_time"`
}

type FirewallConfig struct {
	Backend string   `toml:"backend"`
	Table   string   `toml:"table"`
	Hooks   []string `toml:"hooks"`
	Ports   []string `toml:"ports"`
}

type CompromiseConfig struct {
	OnSuccess   string   `toml:"on_success_after_failures"`
	MinFailures int      `toml:"min_failures"`
	Window      Duration `toml:"window"`
	BanTime     Duration `toml:"ban_time"`
}

type FeedConfig struct {
	Name       string   `toml:"name"`
	URL        string   `toml:"url"`
	Path       string   `toml:"path"`
	Interval   Duration `toml:"interval"`
	Expire     Duration `toml:"expire"`
	MaxEntries int      `toml:"max_entries"`
	Timeout    Duration `toml:"timeout"`
}

// setDefaults gives a [[feed]] the values of keys it leaves out.
func (f *FeedConfig) setDefaults() {
	f.Interval, f.Expire, f.MaxEntries, f.Timeout = Duration(time.Hour), Duration(24*time.Hour), feeds.DefaultMaxEntries, Duration(feeds.DefaultTimeout)
}

// feed returns the feeds package's view of a [[feed]].
func (f FeedConfig) feed() feeds.Feed {
	return feeds.Feed{Name: f.Name, URL: f.URL, Path: f.Path, Interval: time.Duration(f.Interval), MaxEntries: f.MaxEntries, Timeout: time.Duration(f.Timeout)}
}

type NotifyConfig struct {
	Name    string   `toml:"name"`
	URL     string   `toml:"url"`
	Command []string `toml:"command"`
	Events  []string `toml:"events"`
	Headers []string `toml:"headers"`
	Timeout Duration `toml:"timeout"`
	Retries int      `toml:"retries"`
	Queue   int      `toml:"queue"`
}

// setDefaults gives a [[notify]] the values of keys it leaves out.
func (n *NotifyConfig) setDefaults() { n.Retries, n.Queue = 3, notify.DefaultQueue }

// targets returns the notify package's view of a [[notify]]: a webhook
// (url) or a command.
func (n NotifyConfig) targets() ([]notify.Webhook, []notify.Command, error) {
	if n.URL != "" {
		h := notify.Webhook{Name: n.Name, URL: n.URL, Events: n.Events, Timeout: time.Duration(n.Timeout), Retries: n.Retries, Queue: n.Queue}
		for _, line := range n.Headers {
			k, v, ok := strings.Cut(line, ":")
			if !ok || strings.TrimSpace(k) == "" || strings.ContainsAny(k, " \t") {
				return nil, nil, fmt.Errorf("headers: %q is not \"Name: value\"", line)
			}
			if h.Headers == nil {
				h.Headers = map[string]string{}
			}
			h.Headers[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		return []notify.Webhook{h}, nil, nil
	}
	if len(n.Headers) > 0 || n.Retries != 3 {
		return nil, nil, errors.New("headers and retries are for webhooks (url)")
	}
	return nil, []notify.Command{{Name: n.Name, Argv: n.Command, Events: n.Events, Timeout: time.Duration(n.Timeout), Queue: n.Queue}}, nil
}

type ClusterConfig struct {
	Servers  []string `toml:"servers"`
	Name     string   `toml:"name"`
	Creds    string   `toml:"creds"`
	NKey     string   `toml:"nkey"`
	User     string   `toml:"user"`
	Password string   `toml:"password" json:"-"` // never printed
	CA       string   `toml:"ca"`
	Cert     string   `toml:"cert"`
	Key      string   `toml:"key"`
	Stream   string   `toml:"stream"`
	Subject  string   `toml:"subject"`
	Share    bool     `toml:"share"`
	Rules    []string `toml:"rules"`
	Accept   bool     `toml:"accept"`
	Escalate bool     `toml:"escalate"`
	Queue    int      `toml:"queue"`
}

// node returns the cluster package's view of [cluster]; the node's name
// defaults to the host's.
func (c ClusterConfig) node() cluster.Config {
	name := c.Name
	if name == "" {
		name, _ = os.Hostname()
		name, _, _ = strings.Cut(name, ".")
	}
	return cluster.Config{
		Servers: c.Servers, Name: name, Creds: c.Creds, NKey: c.NKey, User: c.User, Password: c.Password,
		CA: c.CA, Cert: c.Cert, Key: c.Key, Stream: c.Stream, Subject: c.Subject,
		Share: c.Share, Rules: c.Rules, Accept: c.Accept, Queue: c.Queue,
	}
}

type MetricsConfig struct {
	Listen string `toml:"listen"`
}

type EngineConfig struct {
	IPv6Prefix int      `toml:"ipv6_prefix"`
	MaxTracked int      `toml:"max_tracked"`
	History    Duration `toml:"history"`
}

type AllowConfig struct {
	Addresses []string `toml:"addresses"`
	Self      bool     `toml:"self"`
}

type SourceConfig struct {
	Name     string   `toml:"name"`
	Type     string   `toml:"type"`
	Path     string   `toml:"path"`
	Parser   string   `toml:"parser"`
	Timezone string   `toml:"timezone"`
	Start    string   `toml:"start"`
	Listen   []string `toml:"listen"`
	Senders  []string `toml:"senders"`
}

// setDefaults gives a [[source]] the values of keys it leaves out.
func (s *SourceConfig) setDefaults() { s.Type, s.Start = "file", "end" }

// ParserConfig is a [[parser]] table: patterns for lines sipguard does not
// know (package parsers/custom).
type ParserConfig struct {
	Name      string          `toml:"name"`
	Timestamp string          `toml:"timestamp"`
	Patterns  []PatternConfig `toml:"pattern"`
}

// PatternConfig is a [[parser.pattern]].
type PatternConfig struct {
	Kind    string     `toml:"kind"`
	Service string     `toml:"service"`
	Regex   string     `toml:"regex"`
	Example StringList `toml:"example"`
}

// StringList is a string or an array of strings.
type StringList []string

type RuleConfig struct {
	Name       string   `toml:"name"`
	Events     []string `toml:"events"`
	MaxRetry   int      `toml:"max_retry"`
	FindTime   Duration `toml:"find_time"`
	BanTime    Duration `toml:"ban_time"`
	Factor     float64  `toml:"factor"`
	MaxBanTime Duration `toml:"max_ban_time"`
}

// setDefaults gives a [[rule]] the values of keys it leaves out.
func (r *RuleConfig) setDefaults() { r.Factor = 1 }

// Duration is a config duration: a string with units ("30s", "10m", "1h",
// "7d", "1h30m"). A bare number is refused: plain time.Duration would read
// ban_time = 3600 as 3.6 µs.
type Duration time.Duration

// ParseDuration reads a config duration (see package duration).
func ParseDuration(s string) (time.Duration, error) { return duration.Parse(s) }

// String formats d with the largest units that divide it: "7d", "1h30m".
func (d Duration) String() string { return formatDuration(time.Duration(d)) }

// MarshalText writes d as in the config file.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func formatDuration(d time.Duration) string { return duration.Format(d) }

// ConfigError is one problem in a config file, with its position.
type ConfigError struct {
	File string // "" for the built-in config
	Line int    // 0 when unknown
	Key  string // key path: "rule[1].find_time", "allow.addresses[0]"
	Msg  string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.File == "" {
		b.WriteString("built-in config")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// decoder collects the problems of one file.
type decoder struct {
	file  string
	lines map[string]int
	errs  []*ConfigError
}

func (d *decoder) errorf(key, format string, args ...any) {
	line := 0
	for k := key; k != ""; {
		if l, ok := d.lines[k]; ok {
			line = l
			break
		}
		// Fall back to the nearest enclosing key: "rule[1].x" -> "rule[1]".
		if i := strings.LastIndexAny(k, ".["); i > 0 {
			k = k[:i]
		} else {
			k = ""
		}
	}
	d.errs = append(d.errs, &ConfigError{File: d.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) err() error {
	sort.SliceStable(d.errs, func(i, j int) bool { return d.errs[i].Line < d.errs[j].Line })
	errs := make([]error, len(d.errs))
	for i, e := range d.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// DefaultConfig returns the built-in configuration: the shipped rules.toml.
func DefaultConfig() *Config {
	cfg, err := decodeConfig("", sipguard.DefaultRules, &Config{})
	if err != nil {
		panic("built-in rules.toml: " + err.Error())
	}
	return cfg
}

// LoadConfig reads the config file at path over the built-in defaults.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(path, data)
}

// ParseConfig decodes data (the content of file) over the built-in
// defaults and validates the result. Keys a file leaves out keep their
// default; an array of tables ([[source]], [[rule]]) or an array value in
// the file replaces the default one. Every problem found is returned.
func ParseConfig(file string, data []byte) (*Config, error) {
	return decodeConfig(file, data, DefaultConfig())
}

func decodeConfig(file string, data []byte, cfg *Config) (*Config, error) {
	d := &decoder{file: file}
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &ConfigError{File: file, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}
		}
		return nil, &ConfigError{File: file, Msg: err.Error()}
	}
	d.lines = keyLines(string(data))
	d.decode(reflect.ValueOf(cfg).Elem(), doc, "")
	if len(d.errs) == 0 {
		cfg.validate(d)
	}
	if len(d.errs) > 0 {
		return nil, d.err()
	}
	cfg.File = file
	return cfg, nil
}

var (
	durationType   = reflect.TypeFor[Duration]()
	stringListType = reflect.TypeFor[StringList]()
)

// decode stores v into rv, reporting type mismatches and unknown keys
// under path. Keys must match exactly: TOML is case-sensitive, and
// BurntSushi/toml's case-insensitive fallback would accept BAN_TIME.
func (d *decoder) decode(rv reflect.Value, v any, path string) {
	if rv.Type() == durationType {
		switch x := v.(type) {
		case string:
			dur, err := ParseDuration(x)
			if err != nil {
				d.errorf(path, "%v", err)
				return
			}
			rv.SetInt(int64(dur))
		case int64, float64:
			d.errorf(path, "%v is a bare number; a duration needs a unit, e.g. \"%vs\"", x, x)
		default:
			d.errorf(path, "must be a duration string such as \"10m\", not %s", tomlType(v))
		}
		return
	}
	if rv.Type() == stringListType {
		if str, ok := v.(string); ok {
			rv.Set(reflect.ValueOf(StringList{str}))
			return
		}
	}
	switch rv.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			d.errorf(path, "must be a table, not %s", tomlType(v))
			return
		}
		d.decodeStruct(rv, m, path)
	case reflect.Slice:
		list, ok := v.([]any)
		if maps, isMaps := v.([]map[string]any); isMaps {
			list, ok = make([]any, len(maps)), true
			for i, m := range maps {
				list[i] = m
			}
		}
		if !ok {
			d.errorf(path, "must be an array, not %s", tomlType(v))
			return
		}
		out := reflect.MakeSlice(rv.Type(), len(list), len(list))
		for i, e := range list {
			if def, ok := out.Index(i).Addr().Interface().(interface{ setDefaults() }); ok {
				def.setDefaults()
			}
			d.decode(out.Index(i), e, fmt.Sprintf("%s[%d]", path, i))
		}
		rv.Set(out)
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			d.errorf(path, "must be a string, not %s", tomlType(v))
			return
		}
		rv.SetString(s)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			d.errorf(path, "must be true or false, not %s", tomlType(v))
			return
		}
		rv.SetBool(b)
	case reflect.Int:
		n, ok := v.(int64)
		if !ok {
			d.errorf(path, "must be an integer, not %s", tomlType(v))
			return
		}
		rv.SetInt(n)
	case reflect.Float64:
		switch x := v.(type) {
		case float64:
			rv.SetFloat(x)
		case int64:
			rv.SetFloat(float64(x))
		default:
			d.errorf(path, "must be a number, not %s", tomlType(v))
		}
	default:
		panic("config: unsupported field type " + rv.Type().String())
	}
}

func (d *decoder) decodeStruct(rv reflect.Value, m map[string]any, path string) {
	t := rv.Type()
	fields := map[string]int{}
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("toml"); tag != "" && tag != "-" {
			fields[tag] = i
		}
	}
	for k, v := range m {
		p := join(path, k)
		i, ok := fields[k]
		if !ok {
			d.errorf(p, "unknown key%s", suggest(k, fields))
			continue
		}
		d.decode(rv.Field(i), v, p)
	}
}

// suggest names the known key a misspelt one probably meant.
func suggest(k string, fields map[string]int) string {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }
	names := make([]string, 0, len(fields))
	for f := range fields {
		if norm(f) == norm(k) {
			return fmt.Sprintf(" (did you mean %q? keys are case-sensitive)", f)
		}
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		if editDistance(f, k) <= 2 {
			return fmt.Sprintf(" (did you mean %q?)", f)
		}
	}
	return " (known: " + strings.Join(names, ", ") + ")"
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	default:
		return "a date/time"
	}
}

var tableName = regexp.MustCompile(`^[A-Za-z0-9_]{1,32}$`)

// validate checks values, naming the key of each problem.
func (c *Config) validate(d *decoder) {
	switch c.Daemon.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		d.errorf("daemon.log_level", "%q is not one of debug, info, warn, error", c.Daemon.LogLevel)
	}
	if c.Daemon.StateDir == "" {
		d.errorf("daemon.state_dir", "must not be empty")
	}
	if c.Daemon.Socket == "" {
		d.errorf("daemon.socket", "must not be empty")
	}
	if c.Daemon.ManualBanTime <= 0 {
		d.errorf("daemon.manual_ban_time", "must be positive")
	}
	switch c.Firewall.Backend {
	case "nftables", "dry-run":
	default:
		d.errorf("firewall.backend", "%q is not one of nftables, dry-run", c.Firewall.Backend)
	}
	if !tableName.MatchString(c.Firewall.Table) {
		d.errorf("firewall.table", "%q must be 1-32 letters, digits or _", c.Firewall.Table)
	}
	if len(c.Firewall.Hooks) == 0 {
		d.errorf("firewall.hooks", "needs \"input\", \"forward\" or both")
	}
	seenHook := map[string]bool{}
	for i, h := range c.Firewall.Hooks {
		if h != "input" && h != "forward" || seenHook[h] {
			d.errorf(fmt.Sprintf("firewall.hooks[%d]", i), "%q: each of \"input\" and \"forward\" at most once", h)
		}
		seenHook[h] = true
	}
	for i, p := range c.Firewall.Ports {
		if _, _, err := parsePort(p); err != nil {
			d.errorf(fmt.Sprintf("firewall.ports[%d]", i), "%v", err)
		}
	}
	if p := c.Engine.IPv6Prefix; p < 32 || p > 128 {
		d.errorf("engine.ipv6_prefix", "%d is out of range 32-128", p)
	}
	if c.Engine.MaxTracked < 1 {
		d.errorf("engine.max_tracked", "%d must be at least 1", c.Engine.MaxTracked)
	}
	if c.Engine.History < 0 {
		d.errorf("engine.history", "must not be negative")
	}
	for i, a := range c.Allow.Addresses {
		if _, err := parsePrefix(a); err != nil {
			d.errorf(fmt.Sprintf("allow.addresses[%d]", i), "%v", err)
		}
	}
	c.validateParsers(d)
	switch c.Compromise.OnSuccess {
	case "off", "alert", "ban":
	default:
		d.errorf("compromise.on_success_after_failures", "%q is not one of off, alert, ban", c.Compromise.OnSuccess)
	}
	if c.Compromise.MinFailures < 1 {
		d.errorf("compromise.min_failures", "must be at least 1 (got %d)", c.Compromise.MinFailures)
	}
	if c.Compromise.Window <= 0 {
		d.errorf("compromise.window", "must be positive")
	}
	if c.Compromise.BanTime <= 0 {
		d.errorf("compromise.ban_time", "must be positive")
	}
	if c.Metrics.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
			d.errorf("metrics.listen", "%q: write HOST:PORT, e.g. \"127.0.0.1:9477\" (empty: no metrics)", c.Metrics.Listen)
		}
	}
	c.validateCluster(d)
	feedNames := map[string]bool{}
	for i, f := range c.Feeds {
		p := fmt.Sprintf("feed[%d]", i)
		if feedNames[f.Name] {
			d.errorf(p+".name", "%q is used by another feed", f.Name)
		}
		feedNames[f.Name] = true
		if _, err := feeds.NewLoader(f.feed(), nil, zerolog.Nop()); err != nil {
			for _, e := range unjoin(err) {
				// The feeds package prefixes each problem with its field.
				field, msg, ok := strings.Cut(e.Error(), ": ")
				key := p
				if ok && feedKey[field] != "" {
					if field == "url, path" {
						msg = "url and path: " + msg
					}
					key, e = p+"."+feedKey[field], errors.New(msg)
				}
				d.errorf(key, "%v", e)
			}
		}
		if time.Duration(f.Expire) < time.Minute {
			d.errorf(p+".expire", "%s is shorter than 1m", time.Duration(f.Expire))
		}
	}
	notifyNames := map[string]bool{}
	for i, n := range c.Notify {
		p := fmt.Sprintf("notify[%d]", i)
		if n.Name != "" && notifyNames[n.Name] {
			d.errorf(p+".name", "%q is used by another [[notify]]", n.Name)
		}
		notifyNames[n.Name] = true
		if (n.URL == "") == (len(n.Command) == 0) {
			d.errorf(p+".url", "set url (a webhook) or command (a program), one of them")
			continue
		}
		hooks, cmds, err := n.targets()
		if err == nil {
			_, err = notify.New(hooks, cmds, zerolog.Nop())
		}
		for _, e := range unjoin(err) {
			if e != nil {
				d.errorf(notifyKey(p, e.Error()))
			}
		}
	}
	names := map[string]bool{}
	for i, s := range c.Sources {
		p := fmt.Sprintf("source[%d]", i)
		switch {
		case s.Name == "":
			d.errorf(p+".name", "missing")
		case names[s.Name]:
			d.errorf(p+".name", "%q is used by another source", s.Name)
		}
		names[s.Name] = true
		switch s.Type {
		case "file":
			if s.Path == "" {
				d.errorf(p+".path", "missing")
			}
			if len(s.Listen) > 0 || len(s.Senders) > 0 {
				d.errorf(p+".listen", "listen and senders are for type = \"syslog\" sources")
			}
		case "syslog":
			if s.Path != "" {
				d.errorf(p+".path", "a syslog source has no path: it listens (listen = [...])")
			}
			if len(s.Listen) == 0 {
				d.errorf(p+".listen", "missing: e.g. [\"udp://0.0.0.0:514\"]")
			}
			for j, l := range s.Listen {
				if err := checkListen(l); err != nil {
					d.errorf(fmt.Sprintf("%s.listen[%d]", p, j), "%v", err)
				}
			}
			if len(s.Senders) == 0 {
				d.errorf(p+".senders", "missing: the addresses or networks allowed to send (anything else is dropped)")
			}
			for j, a := range s.Senders {
				if _, err := parsePrefix(a); err != nil {
					d.errorf(fmt.Sprintf("%s.senders[%d]", p, j), "%v", err)
				}
			}
		default:
			d.errorf(p+".type", "%q is not \"file\" or \"syslog\"", s.Type)
		}
		if s.Parser == "" {
			d.errorf(p+".parser", "missing (known: %s)", strings.Join(c.parserNames(), ", "))
		} else if !c.knownParser(s.Parser) && !c.declaresParser(s.Parser) {
			// A [[parser]] that failed to compile has its own errors.
			d.errorf(p+".parser", "unknown parser %q (known: %s)", s.Parser, strings.Join(c.parserNames(), ", "))
		}
		if s.Timezone != "" {
			if _, err := time.LoadLocation(s.Timezone); err != nil {
				d.errorf(p+".timezone", "unknown time zone %q", s.Timezone)
			}
		}
		if s.Start != "end" && s.Start != "beginning" {
			d.errorf(p+".start", "%q is not \"end\" or \"beginning\"", s.Start)
		}
	}
	if len(c.Rules) == 0 {
		d.errorf("rule", "at least one [[rule]] is needed")
	}
	names = map[string]bool{}
	for i, r := range c.Rules {
		p := fmt.Sprintf("rule[%d]", i)
		switch {
		case r.Name == "":
			d.errorf(p+".name", "missing")
		case names[r.Name]:
			d.errorf(p+".name", "%q is used by another rule", r.Name)
		}
		names[r.Name] = true
		for j, k := range r.Events {
			if _, err := parsers.ParseKind(k); err != nil {
				d.errorf(fmt.Sprintf("%s.events[%d]", p, j), "%v", err)
			}
		}
		if r.MaxRetry < 1 {
			d.errorf(p+".max_retry", "must be at least 1 (got %d)", r.MaxRetry)
		}
		if r.FindTime <= 0 {
			d.errorf(p+".find_time", "must be positive")
		}
		if r.BanTime <= 0 {
			d.errorf(p+".ban_time", "must be positive")
		}
		if r.Factor < 1 || math.IsInf(r.Factor, 0) || math.IsNaN(r.Factor) {
			d.errorf(p+".factor", "must be at least 1 (1 disables escalation), got %v", r.Factor)
		}
		if r.MaxBanTime != 0 && r.MaxBanTime < r.BanTime {
			d.errorf(p+".max_ban_time", "%s is shorter than ban_time %s", r.MaxBanTime, r.BanTime)
		}
	}
}

// validateParsers compiles the [[parser]] tables (see parsers/custom).
func (c *Config) validateParsers(d *decoder) {
	c.custom = map[string]*custom.Compiled{}
	for i, pc := range c.Parsers {
		p := fmt.Sprintf("parser[%d]", i)
		if parsers.Known(pc.Name) {
			d.errorf(p+".name", "%q is a built-in parser", pc.Name)
			continue
		}
		if _, dup := c.custom[pc.Name]; dup {
			d.errorf(p+".name", "%q is used by another parser", pc.Name)
			continue
		}
		spec := custom.Spec{Name: pc.Name, Timestamp: pc.Timestamp}
		for _, pt := range pc.Patterns {
			spec.Patterns = append(spec.Patterns, custom.PatternSpec{Kind: pt.Kind, Service: pt.Service, Regex: pt.Regex, Examples: pt.Example})
		}
		compiled, err := custom.Compile(spec)
		if err != nil {
			for _, e := range unjoin(err) {
				var ce *custom.Error
				key := p
				if errors.As(e, &ce) {
					key = p + "." + ce.Field
					if ce.Pattern >= 0 {
						key = fmt.Sprintf("%s.pattern[%d].%s", p, ce.Pattern, ce.Field)
					}
				}
				d.errorf(key, "%v", e)
			}
			continue
		}
		c.custom[pc.Name] = compiled
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func (c *Config) knownParser(name string) bool {
	_, ok := c.custom[name]
	return ok || parsers.Known(name)
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

func (c *Config) parserNames() []string {
	names := parsers.Names()
	for n := range c.custom {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ParserFactory returns how to make the parser called name: a [[parser]]
// of the config, or a built-in one.
func (c *Config) ParserFactory(name string) parsers.Factory {
	if cp, ok := c.custom[name]; ok {
		return cp.New
	}
	return func(opts parsers.Options) (parsers.Parser, error) { return parsers.New(name, opts) }
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

// parsePort reads "5060/udp".
func parsePort(s string) (uint16, string, error) {
	num, proto, ok := strings.Cut(s, "/")
	n, err := strconv.ParseUint(num, 10, 16)
	if !ok || err != nil || n == 0 || proto != "tcp" && proto != "udp" {
		return 0, "", fmt.Errorf("%q is not a port such as \"5060/udp\" or \"5061/tcp\"", s)
	}
	return uint16(n), proto, nil
}

// parsePrefix reads an address or a CIDR. A CIDR with host bits set is
// refused: "10.1.2.3/8" is a typo for either 10.0.0.0/8 or 10.1.2.3.
func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a valid CIDR", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set (did you mean %s?)", s, p.Masked())
	}
	return p, nil
}

// notifyKey finds the key a notify package error is about: its messages
// read `webhook "NAME": FIELD: what` (FIELD "argv[N]" for command).
func notifyKey(table, msg string) (string, string, string) {
	rest := msg
	if _, after, ok := strings.Cut(msg, `": `); ok {
		rest = after
	}
	field, what, ok := strings.Cut(rest, ": ")
	if !ok {
		return table, "%s", msg
	}
	key := map[string]string{"url": "url", "events": "events", "headers": "headers", "timeout": "timeout",
		"retries": "retries", "queue": "queue", "name": "name"}[field]
	if strings.HasPrefix(field, "argv") {
		key = "command"
		what = field + ": " + what
	}
	if key == "" {
		return table, "%s", msg
	}
	return table + "." + key, "%s", what
}

// feedKey maps the field names of the feeds package's errors to keys.
var feedKey = map[string]string{
	"name": "name", "url": "url", "path": "path", "url, path": "url", "interval": "interval", "max entries": "max_entries",
	"max_entries": "max_entries", "maxentries": "max_entries", "timeout": "timeout",
}

// kinds returns the set of kinds a rule counts (all when none are listed).
func (r RuleConfig) kinds() parsers.KindSet {
	if len(r.Events) == 0 {
		return parsers.AllKinds
	}
	var set parsers.KindSet
	for _, name := range r.Events {
		k, _ := parsers.ParseKind(name) // validated
		set = set.With(k)
	}
	return set
}

// EngineOptions turns the config into engine options. With allow.self the
// host's own addresses are allowed too; hostAddrs lists them.
func (c *Config) EngineOptions(hostAddrs func() ([]netip.Prefix, error)) (engine.Options, error) {
	opts := engine.Options{
		IPv6Prefix: c.Engine.IPv6Prefix,
		MaxTracked: c.Engine.MaxTracked,
		History:    time.Duration(c.Engine.History),
		Compromise: engine.CompromiseRule{
			Action: c.Compromise.OnSuccess, MinFailures: c.Compromise.MinFailures,
			Window: time.Duration(c.Compromise.Window), BanTime: time.Duration(c.Compromise.BanTime),
		},
	}
	for _, a := range c.Allow.Addresses {
		p, _ := parsePrefix(a) // validated
		opts.Allow = append(opts.Allow, p)
	}
	if c.Allow.Self {
		self, err := hostAddrs()
		if err != nil {
			return engine.Options{}, fmt.Errorf("list own addresses for allow.self: %w", err)
		}
		opts.Allow = append(opts.Allow, self...)
	}
	for _, r := range c.Rules {
		opts.Rules = append(opts.Rules, engine.Rule{
			Name: r.Name, Kinds: r.kinds(), MaxRetry: r.MaxRetry,
			FindTime: time.Duration(r.FindTime), BanTime: time.Duration(r.BanTime),
			Factor: r.Factor, MaxBanTime: time.Duration(r.MaxBanTime),
		})
	}
	return opts, nil
}

// HostAddrs lists this host's interface addresses and the loopback
// networks, for allow.self.
func HostAddrs() ([]netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	out := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		p := netip.PrefixFrom(ip, ip.BitLen())
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// Location returns the zone for a source's timestamps without one.
func (s SourceConfig) Location() *time.Location {
	if s.Timezone == "" {
		return time.Local
	}
	loc, err := time.LoadLocation(s.Timezone)
	if err != nil {
		return time.Local // validated
	}
	return loc
}

// validateCluster checks [cluster] when it is on (servers set).
func (c *Config) validateCluster(d *decoder) {
	cl := c.Cluster
	if len(cl.Servers) == 0 {
		return
	}
	for i, s := range cl.Servers {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || !slices.Contains([]string{"nats", "tls", "ws", "wss"}, u.Scheme) {
			d.errorf(fmt.Sprintf("cluster.servers[%d]", i), "%q: write nats://HOST:4222 or tls://HOST:4222", s)
		}
	}
	if n := cl.node().Name; !cluster.ValidName(n) {
		what := "name"
		if cl.Name == "" {
			what = "the host name"
		}
		d.errorf("cluster.name", "%s %q is not a node name: set name to letters, digits, - and _ (at most 64)", what, n)
	}
	auth := 0
	for _, k := range []string{cl.Creds, cl.NKey, cl.User} {
		if k != "" {
			auth++
		}
	}
	if auth > 1 {
		d.errorf("cluster.creds", "set one of creds, nkey, user (and password)")
	}
	if cl.Password != "" && cl.User == "" {
		d.errorf("cluster.password", "password without user")
	}
	if (cl.Cert == "") != (cl.Key == "") {
		d.errorf("cluster.cert", "cert and key go together")
	}
	for _, f := range []struct{ key, path string }{{"creds", cl.Creds}, {"nkey", cl.NKey}, {"ca", cl.CA}, {"cert", cl.Cert}, {"key", cl.Key}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			d.errorf("cluster."+f.key, "%v", err)
		}
	}
	if !cluster.ValidName(cl.Stream) {
		d.errorf("cluster.stream", "%q: letters, digits, - and _", cl.Stream)
	}
	if cl.Subject == "" || strings.ContainsAny(cl.Subject, " \t*>") || strings.HasPrefix(cl.Subject, ".") || strings.HasSuffix(cl.Subject, ".") {
		d.errorf("cluster.subject", "%q is not a subject prefix such as \"sipguard\"", cl.Subject)
	}
	known := []string{"manual", "compromise"}
	for _, r := range c.Rules {
		known = append(known, r.Name)
	}
	for i, r := range cl.Rules {
		if !slices.Contains(known, r) {
			d.errorf(fmt.Sprintf("cluster.rules[%d]", i), "%q is no rule (rules: %s)", r, strings.Join(known, ", "))
		}
	}
	if cl.Queue < 1 {
		d.errorf("cluster.queue", "must be at least 1 (got %d)", cl.Queue)
	}
	if !cl.Share && !cl.Accept {
		d.errorf("cluster.share", "share and accept are both false: remove servers to leave the fleet")
	}
}
