package numbering

import (
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	uk := Plan{InternationalPrefixes: []string{"00"}, NationalPrefix: "0", CountryCode: "44"}
	us := Plan{InternationalPrefixes: []string{"011"}, NationalPrefix: "1", CountryCode: "1"}
	ca := Plan{InternationalPrefixes: []string{"011"}, NationalPrefix: "1", CountryCode: "1", Home: "CA"}
	bare := Plan{InternationalPrefixes: []string{"00"}, NationalPrefix: "0"}
	// Spain has no trunk prefix: national numbers are nine digits.
	es := Plan{InternationalPrefixes: []string{"00"}, CountryCode: "34", NationalDigits: 9}
	tests := []struct {
		plan    *Plan
		dialled string
		public  bool
		intl    bool
		e164    string
		iso     string
		risk    string
	}{
		{&uk, "1001", false, false, "", "", ""},                            // an extension
		{&uk, "*97", false, false, "", "", ""},                             // a feature code
		{&uk, "0", false, false, "", "", ""},                               // the national prefix alone
		{&uk, "02079460000", true, false, "442079460000", "GB", ""},        // national
		{&uk, "09011234567", true, false, "449011234567", "GB", "premium"}, // national premium rate
		{&uk, "004930123456", true, true, "4930123456", "DE", ""},
		{&uk, "+49 30 123456", true, true, "4930123456", "DE", ""},
		{&uk, "+44 20 7946 0000", true, false, "442079460000", "GB", ""}, // own country with +
		{&uk, "0088216012345", true, true, "88216012345", "", "international_network"},
		{&uk, "00881612345678", true, true, "881612345678", "", "satellite"},
		{&uk, "0053123456", true, true, "53123456", "CU", ""},
		{&uk, "0077012345678", true, true, "77012345678", "KZ", ""}, // +7 7: Kazakhstan
		{&uk, "0074951234567", true, true, "74951234567", "RU", ""},
		{&uk, "00123456789012345678", false, false, "", "", ""},   // longer than E.164 allows
		{&uk, "00 49 30;1", false, false, "", "", ""},             // not a number
		{&us, "18765551234", true, true, "18765551234", "JM", ""}, // dialled like a national call, reaches Jamaica
		{&us, "12125551234", true, false, "12125551234", "US", ""},
		{&us, "19005551234", true, false, "19005551234", "US", "premium"},
		{&us, "01144207946000", true, true, "44207946000", "GB", ""},
		// Ten-digit dialling, without the 1 (FreePBX's NXXNXXXXXX route):
		// still a NANP number, Jamaica's included.
		{&us, "8765551234", true, true, "18765551234", "JM", ""},
		{&us, "(212) 555-1234", true, false, "12125551234", "US", ""},
		{&us, "9005551234", true, false, "19005551234", "US", "premium"},
		{&ca, "4165551234", true, false, "14165551234", "CA", ""},
		{&us, "1005551234", false, false, "", "", ""}, // no area code starts with 0 or 1
		{&us, "2120551234", false, false, "", "", ""}, // nor an exchange
		{&us, "555123456", false, false, "", "", ""},  // nine digits: not a number
		{&us, "1234", false, false, "", "", ""},       // an extension
		{&uk, "2125551234", false, false, "", "", ""}, // outside the NANP: an extension
		{&ca, "14165551234", true, false, "14165551234", "CA", ""},
		{&ca, "12125551234", true, true, "12125551234", "US", ""},
		{&bare, "0301234", true, false, "", "", ""},
		{&es, "806123456", true, false, "34806123456", "ES", "premium"}, // Spanish premium rate, dialled as it is
		{&es, "915 123 456", true, false, "34915123456", "ES", ""},
		{&es, "0033142685300", true, true, "33142685300", "FR", ""},
		{&es, "12345678", false, false, "", "", ""}, // fewer digits: an extension
		{&bare, "004930123456", true, true, "4930123456", "DE", ""},
	}
	for _, tt := range tests {
		n := tt.plan.Classify(tt.dialled)
		risk := ""
		if n.Risk != nil {
			risk = n.Risk.Category
		}
		if n.Public != tt.public || n.International != tt.intl || n.E164 != tt.e164 || n.Country.ISO != tt.iso || risk != tt.risk {
			t.Errorf("%+v.Classify(%q) = public %v intl %v e164 %q country %q risk %q; want %v %v %q %q %q",
				*tt.plan, tt.dialled, n.Public, n.International, n.E164, n.Country.ISO, risk, tt.public, tt.intl, tt.e164, tt.iso, tt.risk)
		}
	}
}

func TestUserTables(t *testing.T) {
	p := Plan{InternationalPrefixes: []string{"00"}, CountryCode: "44",
		Ranges:    []Range{{Prefix: "4930", Category: "watch", Name: "Berlin"}, {Prefix: "88216", Category: "mine", Name: "narrower"}},
		Countries: []Country{{Prefix: "4930", ISO: "XB", Name: "Berlin"}}}
	n := p.Classify("004930123")
	if n.Country.ISO != "XB" || n.Risk == nil || n.Risk.Category != "watch" {
		t.Errorf("user tables: country %+v risk %+v", n.Country, n.Risk)
	}
	if n := p.Classify("0088216123456"); n.Risk == nil || n.Risk.Category != "mine" {
		t.Errorf("the longest range wins: %+v", n.Risk)
	}
	if n := p.Classify("0049891234"); n.Country.ISO != "DE" {
		t.Errorf("built-in country after user rows: %+v", n.Country)
	}
}

func TestCheck(t *testing.T) {
	bad := []Plan{
		{InternationalPrefixes: []string{"+"}},
		{NationalPrefix: "x"},
		{NationalDigits: -1},
		{NationalDigits: 16},
		{CountryCode: "+44"},
		{CountryCode: "999"}, // not assigned
		{Home: "gb"},
		{Ranges: []Range{{Prefix: "44 9"}}},
		{Countries: []Country{{Prefix: ""}}},
	}
	for _, p := range bad {
		if err := p.Check(); err == nil {
			t.Errorf("%+v: no error", p)
		}
	}
	good := Plan{InternationalPrefixes: []string{"00", "011"}, NationalPrefix: "0", CountryCode: "44", Home: "GB"}
	if err := good.Check(); err != nil {
		t.Error(err)
	}
}

// TestTables checks the compiled-in tables: well-formed rows, the E.164
// codes prefix-free (the +7 6/+7 7 rows aside), every risk range inside a
// known code.
func TestTables(t *testing.T) {
	tb := tables()
	if len(tb.countries) < 250 {
		t.Fatalf("%d country rows", len(tb.countries))
	}
	for pre, c := range tb.countries {
		if !allDigits(pre) || c.Name == "" || c.ISO != "" && len(c.ISO) != 2 {
			t.Errorf("bad row %q %+v", pre, c)
		}
		if len(pre) == 4 || pre == "76" || pre == "77" {
			continue // NANP areas and Kazakhstan refine +1 and +7
		}
		for other := range tb.countries {
			if other != pre && strings.HasPrefix(other, pre) && len(other) != 4 && other != "76" && other != "77" {
				t.Errorf("codes %s and %s are not prefix-free", pre, other)
			}
		}
	}
	var p Plan
	for _, r := range tb.ranges {
		if _, ok := p.country(r.Prefix + "000000"); !ok {
			t.Errorf("risk range %s outside every country code", r.Prefix)
		}
	}
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{"00441234", "+881 6", "1001", "0", "011", "+", "00+44", "0044(0)20"} {
		f.Add(s)
	}
	p := Plan{InternationalPrefixes: []string{"00", "011"}, NationalPrefix: "0", CountryCode: "44"}
	f.Fuzz(func(t *testing.T, s string) {
		n := p.Classify(s)
		if !n.Public && (n.International || n.E164 != "" || n.Risk != nil) {
			t.Fatalf("%q: internal number with public fields %+v", s, n)
		}
		if n.E164 != "" && (!allDigits(n.E164) || len(n.E164) > 15) {
			t.Fatalf("%q: E164 %q", s, n.E164)
		}
	})
}
