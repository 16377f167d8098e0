package report_test

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/sipguard/sipguard/geoip"
	"github.com/sipguard/sipguard/internal/geoiptest"
	"github.com/sipguard/sipguard/report"
)

// TestCountries: with a country database, the top addresses and networks
// say their country, in the JSON and in the HTML's tables; without one,
// neither has a country column.
func TestCountries(t *testing.T) {
	db, err := geoip.Open(geoiptest.Write(t, t.TempDir(), map[string]string{"198.51.100.0/24": "DE", "2001:db8::/32": "NL"}))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rep := build(t, "testdata/attack.log", "asterisk", report.Options{Country: db.Country})
	if !rep.Countries {
		t.Error("Countries not set")
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Countries bool
		Addresses []struct{ Address, Country string }
		Networks  []struct{ Network, Country string }
		Below     []struct{ Address, Country string } `json:"below_rules"`
	}
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := func(s string) string {
		switch {
		case strings.HasPrefix(s, "198.51.100."):
			return "DE"
		case strings.HasPrefix(s, "2001:db8:"):
			return "NL"
		}
		return ""
	}
	seen := map[string]bool{}
	for _, a := range got.Addresses {
		if a.Country != want(a.Address) {
			t.Errorf("address %s: country %q; want %q", a.Address, a.Country, want(a.Address))
		}
		seen[a.Country] = true
	}
	for _, a := range got.Below {
		if a.Country != want(a.Address) {
			t.Errorf("below the rules: %s: country %q; want %q", a.Address, a.Country, want(a.Address))
		}
	}
	for _, n := range got.Networks {
		if n.Country != want(n.Network) {
			t.Errorf("network %s: country %q; want %q", n.Network, n.Country, want(n.Network))
		}
		seen[n.Country] = true
	}
	if !got.Countries || !seen["DE"] || !seen["NL"] || !seen[""] {
		t.Errorf("countries seen %v (want DE, NL and unknown):\n%s", seen, js.String())
	}

	var page bytes.Buffer
	if err := rep.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	html := page.String()
	if n := strings.Count(html, "<th>country</th>"); n != 3 {
		t.Errorf("%d country columns; want 3 (addresses, networks, below the rules)", n)
	}
	row := regexp.MustCompile(`<tr><td><code>198\.51\.100\.7</code>[^<]*(<span[^>]*>[^<]*</span>)?</td><td>DE</td>`)
	if !row.MatchString(html) {
		t.Error("no DE cell in 198.51.100.7's row")
	}
	if !strings.Contains(html, "<tr><td><code>2001:db8:bad::/64</code></td><td>NL</td>") {
		t.Error("no NL cell in 2001:db8:bad::/64's row")
	}
	if !regexp.MustCompile(`<code>203\.0\.113\.50</code>[^<]*</td><td>-</td>`).MatchString(html) {
		t.Error("no - for an address the database does not know")
	}

	plain := build(t, "testdata/attack.log", "asterisk", report.Options{})
	page.Reset()
	js.Reset()
	plain.WriteHTML(&page)
	plain.WriteJSON(&js)
	if strings.Contains(page.String(), "<th>country</th>") || strings.Contains(js.String(), `"country`) {
		t.Error("a country column or field without a database")
	}
}
