// Package config owns rules.toml: its schema (Config and one type per
// section), its defaults (the shipped rules.toml, built into the binary by
// package sipguard), decoding a file over them with the file and line of
// every problem (Error), and the validation of each section (the Validate
// methods, whose FieldErrors name the key at fault).
//
// A valid Config also turns itself into the settings of the packages that
// do the work: engine options, parser factories, feeds, notify targets and
// the cluster node. The daemon's own settings are assembled by the command
// that runs it, so that this package does not depend on the daemon.
package config

import (
	"fmt"
	"os"
	"time"

	"github.com/sipguard/sipguard"
	"github.com/sipguard/sipguard/feeds"
	"github.com/sipguard/sipguard/notify"
	"github.com/sipguard/sipguard/parsers/custom"

	// The built-in parsers, whose names sources use (the shipped
	// rules.toml names asterisk).
	_ "github.com/sipguard/sipguard/parsers/all"
)

// DefaultPath is where the command looks for the config when none is
// named; without it, the built-in defaults (the shipped rules.toml) apply.
const DefaultPath = "/etc/sipguard/rules.toml"

// Config is the content of rules.toml. Each field's comment is in the
// shipped rules.toml, which is also the default value of every field.
type Config struct {
	Daemon   DaemonConfig   `toml:"daemon"`
	Firewall FirewallConfig `toml:"firewall"`
	Engine   EngineConfig   `toml:"engine"`
	Allow    AllowConfig    `toml:"allow"`
	Policy   PolicyConfig   `toml:"policy"`
	Sources  []SourceConfig `toml:"source"`
	Rules    []RuleConfig   `toml:"rule"`
	Parsers  []ParserConfig `toml:"parser"`

	Compromise CompromiseConfig `toml:"compromise"`
	Metrics    MetricsConfig    `toml:"metrics"`
	Feeds      []FeedConfig     `toml:"feed"`
	Notify     []NotifyConfig   `toml:"notify"`
	Cluster    ClusterConfig    `toml:"cluster"`
	Fraud      FraudConfig      `toml:"fraud"`
	Audit      AuditConfig      `toml:"audit"`
	Wire       WireConfig       `toml:"wire"`
	// GeoIP is zero (and left out of the JSON) when no database is set.
	GeoIP GeoIPConfig `toml:"geoip" json:",omitzero"`

	TrunkDefaults TrunksConfig  `toml:"trunks" json:",omitzero"`
	Trunks        []TrunkConfig `toml:"trunk" json:",omitempty"`

	// custom holds the compiled [[parser]] tables, by name.
	custom map[string]*custom.Compiled

	// File is where the config was read from ("" for the built-in one).
	File string `toml:"-" json:"-"`
}

// DaemonConfig is [daemon].
type DaemonConfig struct {
	StateDir      string   `toml:"state_dir"`
	Socket        string   `toml:"socket"`
	LogLevel      string   `toml:"log_level"`
	ManualBanTime Duration `toml:"manual_ban_time"`
}

// FirewallConfig is [firewall].
type FirewallConfig struct {
	Backend string   `toml:"backend"`
	Table   string   `toml:"table"`
	Hooks   []string `toml:"hooks"`
	Ports   []string `toml:"ports"`
	// Early hooks the drops at prerouting, priority raw (before
	// conntrack).
	Early bool `toml:"early"`
}

// EngineConfig is [engine].
type EngineConfig struct {
	IPv6Prefix int      `toml:"ipv6_prefix"`
	MaxTracked int      `toml:"max_tracked"`
	History    Duration `toml:"history"`
}

// AllowConfig is [allow].
type AllowConfig struct {
	Addresses []string `toml:"addresses"`
	Self      bool     `toml:"self"`
}

// PolicyConfig is [policy]: who reaches the SIP ports at all.
type PolicyConfig struct {
	Mode     string   `toml:"mode"`
	SIPPorts []string `toml:"sip_ports"`
	Rate     string   `toml:"rate"`
	LearnFor Duration `toml:"learn_for"`
	// AllowCountries are ISO 3166-1 alpha-2 codes ("DE") whose sources
	// are admitted to the SIP ports in strict and responsive mode, like
	// learned phones; their networks come from [geoip] database.
	AllowCountries []string `toml:"allow_countries" json:",omitempty"`
}

// SourceConfig is a [[source]]: a log file followed, a syslog receiver,
// or the journal's messages of some units or programs.
type SourceConfig struct {
	Name     string   `toml:"name"`
	Type     string   `toml:"type"`
	Path     string   `toml:"path"`
	Parser   string   `toml:"parser"`
	Timezone string   `toml:"timezone"`
	Start    string   `toml:"start"`
	Listen   []string `toml:"listen"`
	Senders  []string `toml:"senders"`
	// type = "journald" (package journal).
	Units     []string `toml:"units" json:",omitempty"`
	Commands  []string `toml:"commands" json:",omitempty"`
	UIDs      []int    `toml:"uids" json:",omitempty"`
	Namespace string   `toml:"namespace" json:",omitempty"`
}

// setDefaults gives a [[source]] the values of keys it leaves out.
func (s *SourceConfig) setDefaults() { s.Type, s.Start = "file", "end" }

// RuleConfig is a [[rule]].
type RuleConfig struct {
	Name       string   `toml:"name"`
	Events     []string `toml:"events"`
	MaxRetry   int      `toml:"max_retry"`
	FindTime   Duration `toml:"find_time"`
	BanTime    Duration `toml:"ban_time"`
	Factor     float64  `toml:"factor"`
	MaxBanTime Duration `toml:"max_ban_time"`
	// Ports are the ports the rule's bans drop traffic to (GUI failures:
	// 80/tcp and 443/tcp); empty is [firewall] ports.
	Ports []string `toml:"ports" json:",omitempty"`
}

// setDefaults gives a [[rule]] the values of keys it leaves out.
func (r *RuleConfig) setDefaults() { r.Factor = 1 }

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

// CompromiseConfig is [compromise].
type CompromiseConfig struct {
	OnSuccess   string   `toml:"on_success_after_failures"`
	MinFailures int      `toml:"min_failures"`
	Window      Duration `toml:"window"`
	BanTime     Duration `toml:"ban_time"`
	// OnNewCountry is "alert" or "off" ("": off, left out of the JSON);
	// it needs [geoip] database.
	OnNewCountry string `toml:"on_new_country" json:",omitempty"`
}

// MetricsConfig is [metrics].
type MetricsConfig struct {
	Listen string `toml:"listen"`
}

// FeedConfig is a [[feed]]: a blocklist (package feeds).
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

// NotifyConfig is a [[notify]]: a webhook or a command (package notify).
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

// defaultRetries is the retries of a [[notify]] that does not set it; a
// command, which is never retried, must leave it so.
const defaultRetries = 3

// setDefaults gives a [[notify]] the values of keys it leaves out.
func (n *NotifyConfig) setDefaults() { n.Retries, n.Queue = defaultRetries, notify.DefaultQueue }

// ClusterConfig is [cluster]: the cluster of sipguard nodes (package cluster).
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
	// CreateStream: create the stream when missing (labs); in production
	// the operator creates it (docs/cluster.md).
	CreateStream bool     `toml:"create_stream"`
	Share        bool     `toml:"share"`
	Rules        []string `toml:"rules"`
	Accept       bool     `toml:"accept"`
	Escalate     bool     `toml:"escalate"`
	Queue        int      `toml:"queue"`

	MaxPeerBans      int `toml:"max_peer_bans"`
	MaxPeerNetworks  int `toml:"max_peer_networks"`
	MaxPeerSpace4    int `toml:"max_peer_space4"`
	MaxPeerSpace6    int `toml:"max_peer_space6"`
	MaxPeerPerMinute int `toml:"max_peer_bans_per_minute"`
	MaxPeerUnbans    int `toml:"max_peer_unbans"`
}

// DefaultConfig returns the built-in configuration: the shipped rules.toml.
func DefaultConfig() *Config {
	cfg, err := decode("", sipguard.DefaultRules, func() *Config { return &Config{} })
	if err != nil {
		panic("built-in rules.toml: " + err.Error())
	}
	return cfg
}

// Load reads the config file at path over the built-in defaults.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes data (the content of file) over the built-in defaults and
// validates the result. Keys a file leaves out keep their default; an
// array of tables ([[source]], [[rule]]) or an array value in the file
// replaces the default one. Every problem found is returned, each an
// *Error, joined.
func Parse(file string, data []byte) (*Config, error) {
	// The defaults are decoded while the file is parsed: two TOML
	// documents read one after the other were a tenth of a command's
	// start-up.
	defaults := make(chan *Config, 1)
	go func() { defaults <- DefaultConfig() }()
	return decode(file, data, func() *Config { return <-defaults })
}
