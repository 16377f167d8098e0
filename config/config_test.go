package config_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sipguard/sipguard"
	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/config"
	"github.com/sipguard/sipguard/duration"
	"github.com/sipguard/sipguard/engine"
	"github.com/sipguard/sipguard/notify"
	"github.com/sipguard/sipguard/parsers"
)

var update = flag.Bool("update", false, "rewrite the expected output of testdata cases")

const separator = "----------\n"

// TestConfigCases runs testdata/*.tomltest: a TOML file, a line of
// dashes, then the expected result: the decoded config as JSON, or the
// errors, one per line, as `sipguard check` prints them.
func TestConfigCases(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.tomltest")
	if len(files) == 0 {
		t.Fatal("no testdata cases")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".tomltest"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			in, want, ok := strings.Cut(string(data), separator)
			if !ok {
				t.Fatalf("no %q separator", strings.TrimSpace(separator))
			}
			var got string
			cfg, err := config.Parse("rules.toml", []byte(in))
			if err != nil {
				got = err.Error() + "\n"
			} else {
				j, _ := json.MarshalIndent(cfg, "", "  ")
				got = string(j) + "\n"
			}
			if *update {
				if err := os.WriteFile(file, []byte(in+separator+got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestConfigErrorsNameFileLineKey checks the contract of config errors on
// the cases that must fail: each names the file, a line and a key.
func TestConfigErrorsNameFileLineKey(t *testing.T) {
	for _, name := range []string{"unknown_key", "unknown_key_second_rule", "key_case", "bare_number_duration",
		"duration_without_unit", "cidr_host_bits", "bad_address", "unknown_parser", "unknown_kind", "wrong_type", "bad_timezone"} {
		data, err := os.ReadFile("testdata/" + name + ".tomltest")
		if err != nil {
			t.Fatal(err)
		}
		in, _, _ := strings.Cut(string(data), separator)
		_, err = config.Parse("rules.toml", []byte(in))
		var ce *config.Error
		if !errors.As(err, &ce) {
			t.Errorf("%s: error %v is not a *config.Error", name, err)
			continue
		}
		if ce.File != "rules.toml" || ce.Line == 0 || ce.Key == "" {
			t.Errorf("%s: %q lacks file, line or key", name, ce)
		}
		// The line named holds the key's last element.
		lines := strings.Split(in, "\n")
		if ce.Line > len(lines) {
			t.Errorf("%s: line %d beyond the file", name, ce.Line)
			continue
		}
		last := ce.Key[strings.LastIndexAny(ce.Key, ".]")+1:]
		if last != "" && !strings.Contains(lines[ce.Line-1], last) && !strings.Contains(lines[ce.Line-1], `"`) {
			t.Errorf("%s: line %d %q does not hold key %s", name, ce.Line, lines[ce.Line-1], ce.Key)
		}
	}
}

// TestDefaultConfig checks that the built-in defaults are the shipped
// rules.toml and that it is valid.
func TestDefaultConfig(t *testing.T) {
	shipped, err := os.ReadFile("../rules.toml")
	if err != nil {
		t.Fatal(err)
	}
	if string(shipped) != string(sipguard.DefaultRules) {
		t.Fatal("embedded rules differ from rules.toml")
	}
	cfg := config.DefaultConfig()
	if len(cfg.Rules) != 2 || cfg.Rules[0].Name != "burst" || cfg.Rules[1].Name != "slow" || len(cfg.Sources) != 1 {
		t.Errorf("default config: %+v", cfg)
	}
	// Every key of the config struct is documented in rules.toml.
	for _, key := range []string{"state_dir", "socket", "log_level", "backend", "table", "ipv6_prefix", "max_tracked",
		"history", "addresses", "self", "name", "path", "parser", "timezone", "events", "max_retry", "find_time",
		"ban_time", "factor", "max_ban_time"} {
		if !strings.Contains(string(shipped), key) {
			t.Errorf("rules.toml does not document %s", key)
		}
	}
	// A file with the same content gives the same config.
	fromFile, err := config.Parse("rules.toml", shipped)
	if err != nil {
		t.Fatal(err)
	}
	fromFile.File = ""
	a, _ := json.Marshal(cfg)
	b, _ := json.Marshal(fromFile)
	if string(a) != string(b) {
		t.Errorf("parsing rules.toml gives\n%s\nnot the defaults\n%s", b, a)
	}
}

// TestDuration: config durations read and print as package duration
// does.
func TestDuration(t *testing.T) {
	good := map[string]string{"30s": "30s", "10m": "10m", "1h": "1h", "7d": "7d", "2w": "14d", "1h30m": "1h30m", "500ms": "500ms", "0s": "0s", "90m": "1h30m"}
	for in, want := range good {
		d, err := duration.Parse(in)
		if got := config.Duration(d).String(); err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "10", "3600", "1.5h", "10y", "h", "-1h", "1h 30m", "99999999999999999999d", "1d1"} {
		if d, err := duration.Parse(in); err == nil {
			t.Errorf("Parse(%q) = %v; want an error", in, d)
		}
	}
}

// FuzzConfig: any input gives a config or an error that formats, never a
// panic.
func FuzzConfig(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.tomltest")
	for _, file := range files {
		data, _ := os.ReadFile(file)
		in, _, _ := strings.Cut(string(data), separator)
		f.Add(in)
	}
	f.Add(string(sipguard.DefaultRules))
	f.Fuzz(func(t *testing.T, in string) {
		cfg, err := config.Parse("fuzz.toml", []byte(in))
		if err != nil {
			_ = err.Error()
			return
		}
		if len(cfg.Rules) == 0 {
			t.Fatal("accepted a config without rules")
		}
		opts, err := cfg.EngineOptions(func() ([]netip.Prefix, error) { return nil, nil })
		if err != nil {
			t.Fatalf("valid config, no engine options: %v", err)
		}
		// What the config accepts, the engine accepts.
		if _, err := engine.New(opts); err != nil {
			t.Fatalf("valid config refused by the engine: %v", err)
		}
	})
}

// TestConfigReference: rules.toml, the configuration reference, documents
// every key the code reads, so the two cannot drift apart.
func TestConfigReference(t *testing.T) {
	doc, err := os.ReadFile("../rules.toml")
	if err != nil {
		t.Fatal(err)
	}
	documented := func(key string) bool {
		re := regexp.MustCompile(`(?m)^#?\s*` + regexp.QuoteMeta(key) + `(\s|=|$)`)
		return re.Match(doc)
	}
	var walk func(tp reflect.Type, path string)
	walk = func(tp reflect.Type, path string) {
		for i := range tp.NumField() {
			f := tp.Field(i)
			tag := f.Tag.Get("toml")
			if tag == "" || tag == "-" {
				continue
			}
			key := strings.TrimPrefix(path+"."+tag, ".")
			ft := f.Type
			switch {
			case ft.Kind() == reflect.Struct && ft != reflect.TypeFor[config.Duration]():
				if !bytes.Contains(doc, []byte("["+tag+"]")) {
					t.Errorf("table [%s] is not in rules.toml", key)
				}
				walk(ft, key)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				if !bytes.Contains(doc, []byte("[["+tag+"]]")) && !bytes.Contains(doc, []byte("[["+key+"]]")) {
					t.Errorf("table [[%s]] is not in rules.toml", key)
				}
				walk(ft.Elem(), key)
			default:
				if !documented(tag) {
					t.Errorf("key %s is not documented in rules.toml", key)
				}
			}
		}
	}
	walk(reflect.TypeFor[config.Config](), "")
}

// TestValidate: section validation returns keys relative to the section,
// Config.Validate full key paths, and typed errors stay typed.
func TestValidate(t *testing.T) {
	errs := config.RuleConfig{Name: "r", MaxRetry: 0, FindTime: config.Duration(time.Minute), BanTime: config.Duration(time.Hour), Factor: 1}.Validate()
	if len(errs) != 1 || errs[0].Key != "max_retry" {
		t.Errorf("rule: got %v; want one max_retry problem", errs)
	}
	cfg := config.DefaultConfig()
	cfg.Allow.Addresses = []string{"10.0.0.0/8", "10.1.2.3/8"}
	cfg.Notify = []config.NotifyConfig{{Name: "x", Command: []string{"/bin/true", "{nope}"}, Retries: 3}}
	errs = cfg.Validate()
	if len(errs) != 2 || errs[0].Key != "allow.addresses[1]" || errs[1].Key != "notify[0].command" {
		t.Fatalf("got %v; want allow.addresses[1] and notify[0].command", errs)
	}
	var hostBits *bans.HostBitsError
	if !errors.As(errs[0], &hostBits) || hostBits.Masked.String() != "10.0.0.0/8" {
		t.Errorf("got %#v; want a *bans.HostBitsError", errs[0].Err)
	}
	var fe *notify.FieldError
	if !errors.As(errs[1], &fe) || fe.Field != "argv" || fe.Index != 1 {
		t.Errorf("got %#v; want a *notify.FieldError for argv[1]", errs[1].Err)
	}
}

// TestAllowMapped: an allowlist entry written IPv4-mapped is the IPv4
// address: check takes it, and the engine allows that address.
func TestAllowMapped(t *testing.T) {
	cfg, err := config.Parse("rules.toml", []byte(`
[allow]
self = false
addresses = ["::ffff:198.51.100.7/128", "::ffff:198.51.100.8", "::ffff:203.0.113.0/120"]
`))
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cfg.EngineOptions(func() ([]netip.Prefix, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("198.51.100.7/32"), netip.MustParsePrefix("198.51.100.8/32"), netip.MustParsePrefix("203.0.113.0/24")}
	if !reflect.DeepEqual(opts.Allow, want) {
		t.Errorf("allow %v; want %v", opts.Allow, want)
	}
	e, err := engine.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"198.51.100.7", "::ffff:198.51.100.7", "198.51.100.8", "203.0.113.9"} {
		if !e.Allowed(netip.MustParseAddr(a).Unmap()) {
			t.Errorf("%s not allowed", a)
		}
	}
	if opts.Special == nil {
		t.Error("the engine options drop no special-purpose addresses")
	}
}

// TestManualBanTimeLimit: manual_ban_time is at most bans.MaxDuration.
func TestManualBanTimeLimit(t *testing.T) {
	_, err := config.Parse("rules.toml", []byte("[daemon]\nmanual_ban_time = \"100000d\"\n"))
	if err == nil || !strings.Contains(err.Error(), "daemon.manual_ban_time: 100000d is longer than the longest manual ban, 3650d") {
		t.Errorf("manual_ban_time = 100000d: %v", err)
	}
	if _, err := config.Parse("rules.toml", []byte("[daemon]\nmanual_ban_time = \"3650d\"\n")); err != nil {
		t.Errorf("manual_ban_time = 3650d: %v", err)
	}
}

// TestFraudErrors: [fraud] mistakes name their key, whether the rules are
// enabled or not.
func TestFraudErrors(t *testing.T) {
	for key, text := range map[string]string{
		"fraud.allowed_countries":    "[fraud]\nallowed_countries = [\"gb\"]\n",
		"fraud.country_code":         "[fraud]\ncountry_code = \"999\"\n",
		"fraud.international_prefix": "[fraud]\ninternational_prefix = [\"+\"]\n",
		"fraud.national_digits":      "[fraud]\nnational_digits = 16\n",
		"fraud.business_hours":       "[fraud]\nbusiness_hours = \"9-5\"\n",
		"fraud.timezone":             "[fraud]\ntimezone = \"Mars/Olympus\"\n",
		"fraud.risk_prefixes":        "[fraud]\nrisk_prefixes = [\"+44 9x\"]\n",
		"fraud.calls_window":         "[fraud]\ncalls_window = \"0s\"\n",
		"fraud.cdr_options":          "[fraud]\ncdr_options = [\"loguniqueID\"]\n",
		"fraud.max_concurrent":       "[fraud]\nmax_concurrent = -1\n",
	} {
		_, err := config.Parse("rules.toml", []byte(text))
		if err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "rules.toml:") {
			t.Errorf("%q: %v, want an error naming rules.toml and %s", text, err, key)
		}
	}
	cfg, err := config.Parse("rules.toml", []byte("[fraud]\nenabled = true\ncountry_code = \"44\"\nbusiness_hours = \"mon-fri 08:00-18:00\"\ntimezone = \"Europe/London\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	o, err := cfg.Fraud.Options()
	if err != nil || o.BusinessHours == nil || o.Plan.CountryCode != "44" || o.MaxConcurrent != 4 {
		t.Errorf("options %+v %v", o, err)
	}
}

// TestAuditErrors: [audit] mistakes name their key.
func TestAuditErrors(t *testing.T) {
	for key, text := range map[string]string{
		"audit.interval":     "[audit]\ninterval = \"-1h\"\n",
		"audit.asterisk_dir": "[audit]\nasterisk_dir = \"etc/asterisk\"\n",
		"audit.min_severity": "[audit]\nmin_severity = \"severe\"\n",
	} {
		_, err := config.Parse("rules.toml", []byte(text))
		if err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "rules.toml:") {
			t.Errorf("%q: %v, want an error naming rules.toml and %s", text, err, key)
		}
	}
}

// TestChallengeUnansweredOptIn: a rule that lists no events counts every
// kind but challenge_unanswered (the wire sensor's weak signal: phones
// that give up do it too); the default rules do not count it, and a rule
// that names it does.
func TestChallengeUnansweredOptIn(t *testing.T) {
	noHosts := func() ([]netip.Prefix, error) { return nil, nil }
	opts, err := config.DefaultConfig().EngineOptions(noHosts)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range opts.Rules {
		if r.Kinds.Has(parsers.ChallengeUnanswered) {
			t.Errorf("default rule %q counts challenge_unanswered", r.Name)
		}
		if !r.Kinds.Has(parsers.AuthFailed) || !r.Kinds.Has(parsers.Injection) {
			t.Errorf("default rule %q counts %s; want every other kind", r.Name, r.Kinds)
		}
	}
	cfg, err := config.Parse("rules.toml", []byte(`[[rule]]
name = "unanswered"
events = ["challenge_unanswered"]
max_retry = 20
find_time = "10m"
ban_time = "1h"
`))
	if err != nil {
		t.Fatal(err)
	}
	if opts, err = cfg.EngineOptions(noHosts); err != nil {
		t.Fatal(err)
	}
	if got := opts.Rules[0].Kinds; got != 0|1<<parsers.ChallengeUnanswered {
		t.Errorf("rule naming challenge_unanswered counts %s", got)
	}
}
