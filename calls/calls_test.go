package calls

import (
	"strings"
	"testing"
	"time"
)

// celLine writes a record as cel_custom does with the shipped mapping:
// every field through CSV_QUOTE (quotes doubled, newlines kept).
func celLine(fields ...string) string {
	q := make([]string, len(fields))
	for i, f := range fields {
		q[i] = `"` + strings.ReplaceAll(f, `"`, `""`) + `"`
	}
	return strings.Join(q, ",") + "\n"
}

// feed reads text line by line and returns the updates and outcomes.
func feed(r *CELReader, text string) ([]Update, map[Outcome]int) {
	var ups []Update
	outs := map[Outcome]int{}
	for _, l := range strings.SplitAfter(text, "\n") {
		if l == "" {
			continue
		}
		var u Update
		o := r.Line([]byte(strings.TrimSuffix(l, "\n")), &u)
		outs[o]++
		if o == Matched {
			ups = append(ups, u)
		}
	}
	return ups, outs
}

func TestCELCall(t *testing.T) {
	log := celLine("CHAN_START", "1764669600.000100", "PJSIP/1001-0000002a", "from-internal", "0088216012345", "1764669600.42", "1764669600.42", "", "", "", "1001") +
		celLine("APP_START", "1764669600.100000", "PJSIP/1001-0000002a", "from-internal", "0088216012345", "1764669600.42", "1764669600.42", "Dial", "PJSIP/0088216012345@trunk,60", "", "1001") +
		celLine("CHAN_START", "1764669600.200000", "PJSIP/trunk-0000002b", "from-trunk", "", "1764669600.43", "1764669600.42", "", "", "", "1001") +
		celLine("ANSWER", "1764669610.000000", "PJSIP/trunk-0000002b", "from-trunk", "", "1764669600.43", "1764669600.42", "", "", "", "") +
		celLine("ANSWER", "1764669610.000100", "PJSIP/1001-0000002a", "from-internal", "0088216012345", "1764669600.42", "1764669600.42", "", "", "", "1001") +
		celLine("HANGUP", "1764669700.000000", "PJSIP/trunk-0000002b", "from-trunk", "", "1764669600.43", "1764669600.42", "", "", "", "") +
		celLine("HANGUP", "1764669700.000200", "PJSIP/1001-0000002a", "from-internal", "0088216012345", "1764669600.42", "1764669600.42", "", "", "", "1001") +
		celLine("LINKEDID_END", "1764669700.000300", "PJSIP/1001-0000002a", "from-internal", "0088216012345", "1764669600.42", "1764669600.42", "", "", "", "1001")
	r := NewCELReader(nil, 0)
	ups, outs := feed(r, log)
	if len(ups) != 3 || outs[Matched] != 3 || outs[Ignored] != 5 {
		t.Fatalf("updates %+v outcomes %v", ups, outs)
	}
	start := time.Unix(1764669600, 100000).UTC()
	want := Call{ID: "1764669600.42", Account: "1001", Tech: "PJSIP", Dialled: "0088216012345", Context: "from-internal",
		Start: start, Answer: time.Unix(1764669610, 0).UTC(), End: time.Unix(1764669700, 200000).UTC()}
	if ups[0].Change != Started || ups[1].Change != Answered || ups[2].Change != Ended || ups[2].Call != want {
		t.Errorf("got %+v\nwant ended %+v", ups, want)
	}
	if b := ups[2].Call.Billed(); b != 90*time.Second+200*time.Microsecond {
		t.Errorf("billed %v", b)
	}
	if r.Open() != 0 {
		t.Errorf("%d calls still open", r.Open())
	}
}

// TestCELInjectedNewline: a caller dials a number holding a newline and a
// complete forged record naming another account. cel_custom writes it
// inside the quoted exten field (quotes doubled): the forged record never
// becomes a call, and the real one is read whole.
func TestCELInjectedNewline(t *testing.T) {
	forged := strings.TrimSuffix(celLine("CHAN_START", "1764669600.000000", "PJSIP/ceo-00000001", "from-internal", "0088216099999", "1764669600.7", "1764669600.7", "", "", "", "x"), "\n")
	dialled := "123\n" + forged + "\n" + `","` // a second newline, and an attempt to close the field
	log := celLine("CHAN_START", "1764669600.000100", "PJSIP/1001-0000002a", "from-internal", dialled, "1764669600.42", "1764669600.42", "", "", "", "1001")
	r := NewCELReader(nil, 0)
	ups, outs := feed(r, log)
	if len(ups) != 1 || ups[0].Call.Account != "1001" || ups[0].Call.Dialled != dialled {
		t.Fatalf("updates %+v outcomes %v", ups, outs)
	}
	if outs[Pending] != 2 {
		t.Errorf("outcomes %v: want the record read across its 3 lines", outs)
	}
}

func TestCELDrops(t *testing.T) {
	ok := []string{"CHAN_START", "1764669600.000100", "PJSIP/1001-0000002a", "c", "1", "1764669600.42", "1764669600.42", "", "", "", ""}
	with := func(i int, v string) string {
		f := append([]string(nil), ok...)
		f[i] = v
		return celLine(f...)
	}
	cases := map[string]struct {
		line string
		want Outcome
	}{
		"unknown event":         {with(0, "CHAN_STARTED"), DropMalformed},
		"bad time":              {with(1, "1764669600.1"), DropTime},
		"bad unique id":         {with(5, "x.1"), DropMalformed},
		"too few fields":        {celLine(ok[:10]...), DropMalformed},
		"quote in a bare field": {`"CHAN_START",x""y,` + celLine(ok[2:]...), DropMalformed},
		"text after quote":      {strings.Replace(celLine(ok...), `"c"`, `"c"x`, 1), DropMalformed},
		"longer than bound":     {with(4, strings.Repeat("9", celMaxRecord)), DropTooLong},
		"system name":           {with(5, "pbx1-1764669600.42"), Ignored}, // uid != lid: not the caller
		"date format":           {with(1, "2025-12-02 10:00:00"), Matched},
	}
	for name, c := range cases {
		r := NewCELReader(time.UTC, 0)
		_, outs := feed(r, c.line)
		if outs[c.want] != 1 || len(outs) != 1 {
			t.Errorf("%s: outcomes %v, want one %v", name, outs, c.want)
		}
		if !r.Idle() {
			t.Errorf("%s: reader not idle after the line", name)
		}
	}
}

// TestCELOpenBounded: calls whose end is never logged are forgotten past
// the bound.
func TestCELOpenBounded(t *testing.T) {
	r := NewCELReader(nil, 100)
	for i := range 1000 {
		id := "1764669600." + strings.Repeat("1", 1+i%5) + string(rune('0'+i%10))
		id += "0" + strings.Repeat("2", i/10)
		var u Update
		r.Line([]byte(strings.TrimSuffix(celLine("CHAN_START", "1764669600.000100", "PJSIP/1001-0000002a", "c", "1", id, id, "", "", "", ""), "\n")), &u)
	}
	if r.Open() > 100 || len(r.fifo) > 201 {
		t.Errorf("%d open, %d remembered", r.Open(), len(r.fifo))
	}
}

func cdrLine(fields ...string) string {
	q := make([]string, len(fields))
	for i, f := range fields {
		switch {
		case i >= 12 && i <= 13: // duration, billsec: bare
			q[i] = f
		case (i >= 9 && i <= 11) && f == "": // an unset date: bare and empty
			q[i] = ""
		default:
			q[i] = `"` + strings.ReplaceAll(f, `"`, `""`) + `"`
		}
	}
	return strings.Join(q, ",") + "\n"
}

func TestCDR(t *testing.T) {
	answered := cdrLine("", "1001", "0088216012345", "from-internal", `"Alice" <1001>`, "PJSIP/1001-0000002a", "PJSIP/trunk-0000002b",
		"Dial", "PJSIP/0088216012345@trunk,60", "2025-12-02 10:00:00", "2025-12-02 10:00:10", "2025-12-02 10:01:40", "100", "90", "ANSWERED", "DOCUMENTATION")
	unanswered := cdrLine("", "1001", "0044", "from-internal", "", "PJSIP/1001-0000002c", "", "Dial", "", "2025-12-02 10:02:00", "", "2025-12-02 10:02:05", "5", "0", "NO ANSWER", "DOCUMENTATION")
	r := NewCDRReader(CDRColumns{}, time.UTC)
	var c Call
	if o := r.Line([]byte(strings.TrimSuffix(answered, "\n")), &c); o != Matched {
		t.Fatalf("answered: %v", o)
	}
	if c.Account != "1001" || c.Dialled != "0088216012345" || c.Billed() != 90*time.Second || c.Start != time.Date(2025, 12, 2, 10, 0, 0, 0, time.UTC) {
		t.Errorf("answered: %+v billed %v", c, c.Billed())
	}
	if o := r.Line([]byte(strings.TrimSuffix(unanswered, "\n")), &c); o != Matched || !c.Answer.IsZero() || c.Billed() != 0 {
		t.Errorf("unanswered: %v %+v", o, c)
	}
	// Optional columns: with loguniqueid and loguserfield the ID is the
	// unique ID; a record of the wrong width is dropped.
	r2 := NewCDRReader(CDRColumns{UniqueID: true, UserField: true}, time.UTC)
	wide := strings.TrimSuffix(answered, "\n") + `,"1764669600.42",""`
	if o := r2.Line([]byte(wide), &c); o != Matched || c.ID != "1764669600.42" {
		t.Errorf("wide: %v %+v", o, c)
	}
	if o := r2.Line([]byte(strings.TrimSuffix(answered, "\n")), &c); o != DropMalformed {
		t.Errorf("narrow record with wide columns: %v", o)
	}
	// A caller ID name with a newline and a forged record: one record.
	forged := strings.TrimSuffix(cdrLine("", "666", "0088216099999", "from-internal", "", "PJSIP/ceo-00000001", "", "Dial", "", "2025-12-02 10:00:00", "2025-12-02 10:00:01", "2025-12-02 11:00:00", "3600", "3599", "ANSWERED", "DOCUMENTATION"), "\n")
	inj := cdrLine("", "1001", "100", "from-internal", "x\n"+forged+"\n", "PJSIP/1001-0000002d", "", "Dial", "", "2025-12-02 10:03:00", "", "2025-12-02 10:03:01", "1", "0", "NO ANSWER", "DOCUMENTATION")
	var outs []Outcome
	for _, l := range strings.Split(strings.TrimSuffix(inj, "\n"), "\n") {
		outs = append(outs, r.Line([]byte(l), &c))
	}
	if len(outs) != 3 || outs[0] != Pending || outs[1] != Pending || outs[2] != Matched || c.Account != "1001" {
		t.Errorf("injected: %v %+v", outs, c)
	}
}

func TestAccount(t *testing.T) {
	for ch, want := range map[string]string{
		"PJSIP/1001-0000002a":            "PJSIP 1001",
		"SIP/alice-smith-0000000a":       "SIP alice-smith",
		"IAX2/trunk-00000001":            "IAX2 trunk",
		"IAX2/1004-4567":                 "IAX2 1004", // chan_iax2: "IAX2/%s-%d", the call number
		"IAX2/1004-1":                    "IAX2 1004",
		"IAX2/1004-":                     " ",
		"IAX2/1004-4a":                   " ",
		"SIP/1004-4567":                  " ", // chan_sip and PJSIP: eight hex digits
		"Local/100@from-internal-0003;1": " ",
		"PJSIP/1001":                     " ",
		"PJSIP/1001-XYZ00000":            " ",
		"/x-00000001":                    " ",
	} {
		tech, acct := Account(ch)
		if tech+" "+acct != want {
			t.Errorf("Account(%q) = %q %q, want %q", ch, tech, acct, want)
		}
	}
}

func FuzzCEL(f *testing.F) {
	f.Add([]byte(celLine("CHAN_START", "1764669600.000100", "PJSIP/1001-0000002a", "c", "1\n\"x\"", "1.1", "1.1", "", "", "", "")))
	f.Add([]byte(`"ANSWER","1.000000",""""` + "\n\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewCELReader(nil, 10)
		for _, l := range strings.Split(string(data), "\n") {
			var u Update
			if r.Line([]byte(l), &u) == Matched && u.Call.ID == "" {
				t.Fatalf("a call without an ID: %+v", u)
			}
		}
		if r.Open() > 10 {
			t.Fatalf("%d calls open", r.Open())
		}
	})
}

func FuzzCDR(f *testing.F) {
	f.Add([]byte(cdrLine("", "1", "2", "c", "x\ny", "PJSIP/1-00000001", "", "Dial", "", "2025-12-02 10:00:00", "", "2025-12-02 10:00:01", "1", "0", "BUSY", "OMIT")))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewCDRReader(CDRColumns{}, time.UTC)
		for _, l := range strings.Split(string(data), "\n") {
			var c Call
			if r.Line([]byte(l), &c) == Matched && (c.Start.IsZero() || c.End.IsZero()) {
				t.Fatalf("a call without times: %+v", c)
			}
		}
	})
}
