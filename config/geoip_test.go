package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sipguard/sipguard/config"
	"github.com/sipguard/sipguard/internal/geoiptest"
)

// TestGeoIP: [geoip] database is opened and checked at parse time; a
// missing, corrupt or foreign file is an error at the key's line.
func TestGeoIP(t *testing.T) {
	dir := t.TempDir()
	good := geoiptest.Write(t, dir, map[string]string{"1.2.3.0/24": "DE"})
	corrupt := filepath.Join(dir, "corrupt.mmdb")
	if err := os.WriteFile(corrupt, []byte("1.2.3.0/24,DE\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	doc := func(path string) string {
		return "[daemon]\nlog_level = \"info\"\n\n[geoip]\ndatabase = \"" + path + "\"\n"
	}

	cfg, err := config.Parse("rules.toml", []byte(doc(good)))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.GeoIP.Database != good {
		t.Errorf("database %q; want %q", cfg.GeoIP.Database, good)
	}
	if config.DefaultConfig().GeoIP.Database != "" {
		t.Error("the shipped config sets a database")
	}
	for name, c := range map[string]struct{ path, want string }{
		"missing":   {filepath.Join(dir, "none.mmdb"), "no such file"},
		"corrupt":   {corrupt, "not a MaxMind DB file"},
		"directory": {dir, "not a regular file"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := config.Parse("rules.toml", []byte(doc(c.path)))
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v; want a *config.Error", err)
			}
			if ce.Line != 5 || ce.Key != "geoip.database" || !strings.Contains(ce.Msg, c.want) || !strings.Contains(ce.Msg, c.path) {
				t.Errorf("error %q (line %d, key %q); want line 5, geoip.database, the path and %q", ce, ce.Line, ce.Key, c.want)
			}
		})
	}
	t.Run("unknown key", func(t *testing.T) {
		_, err := config.Parse("rules.toml", []byte("[geoip]\ndatabse = \"/x\"\n"))
		if err == nil || !strings.Contains(err.Error(), `rules.toml:2: geoip.databse: unknown key (did you mean "database"?)`) {
			t.Errorf("error %v", err)
		}
	})
}

// TestOnNewCountry: [compromise] on_new_country is off or alert, and
// alert needs a country database.
func TestOnNewCountry(t *testing.T) {
	db := geoiptest.Write(t, t.TempDir(), map[string]string{"1.2.3.0/24": "DE"})
	cfg, err := config.Parse("rules.toml", []byte("[geoip]\ndatabase = \""+db+"\"\n[compromise]\non_new_country = \"alert\"\n"))
	if err != nil || cfg.Compromise.OnNewCountry != "alert" {
		t.Fatalf("%v %+v", err, cfg)
	}
	if config.DefaultConfig().Compromise.OnNewCountry != "" {
		t.Error("on by default")
	}
	for doc, want := range map[string]string{
		"[compromise]\non_new_country = \"alert\"\n":  `rules.toml:2: compromise.on_new_country: needs a country database: set [geoip] database`,
		"[compromise]\non_new_country = \"always\"\n": `rules.toml:2: compromise.on_new_country: "always" is not one of off, alert`,
	} {
		if _, err := config.Parse("rules.toml", []byte(doc)); err == nil || err.Error() != want {
			t.Errorf("%q: %v; want %s", doc, err, want)
		}
	}
}

// TestAllowCountries: [policy] allow_countries are two capital letters,
// each once, and need a country database; errors name the line.
func TestAllowCountries(t *testing.T) {
	db := geoiptest.Write(t, t.TempDir(), map[string]string{"1.2.3.0/24": "DE"})
	geo := "[geoip]\ndatabase = \"" + db + "\"\n"
	cfg, err := config.Parse("rules.toml", []byte(geo+"[policy]\nmode = \"strict\"\nallow_countries = [\"DE\", \"AT\"]\n[allow]\naddresses = [\"192.0.2.1\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Policy.AllowCountries; len(got) != 2 || got[0] != "DE" || got[1] != "AT" {
		t.Errorf("allow_countries %v", got)
	}
	if len(config.DefaultConfig().Policy.AllowCountries) != 0 {
		t.Error("the shipped config allows countries")
	}
	for list, want := range map[string]string{
		`["de"]`:        `rules.toml:4: policy.allow_countries[0]: "de" is not a country code: two capital letters (ISO 3166-1 alpha-2), such as "DE"`,
		`["DE", "DEU"]`: `rules.toml:4: policy.allow_countries[1]: "DEU" is not a country code`,
		`["DE", ""]`:    `rules.toml:4: policy.allow_countries[1]: "" is not a country code`,
		`["AT", "AT"]`:  `rules.toml:4: policy.allow_countries[1]: "AT" is listed twice`,
		`["D1"]`:        `policy.allow_countries[0]: "D1" is not a country code`,
		`["DE", "<b>"]`: `"<b>" is not a country code`,
		`"DE"`:          `rules.toml:4: policy.allow_countries`,
	} {
		_, err := config.Parse("rules.toml", []byte(geo+"[policy]\nallow_countries = "+list+"\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v; want %s", list, err, want)
		}
	}
	_, err = config.Parse("rules.toml", []byte("[policy]\nmode = \"responsive\"\nallow_countries = [\"DE\"]\n"))
	if err == nil || !strings.Contains(err.Error(), `rules.toml:3: policy.allow_countries: needs a country database: set [geoip] database`) {
		t.Errorf("without a database: %v", err)
	}
}
