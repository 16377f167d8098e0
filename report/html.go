package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/duration"
)

//go:embed report.html.tmpl
var pageText string

// CSP is the page's Content-Security-Policy: nothing loads, nothing runs;
// only the inline style applies. The page is opened on air-gapped
// laptops and attached to tickets: it must never reach out.
const CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

// page is parsed on first use: parsing it costs a few milliseconds at
// the start of every command, `sipguard scan` included.
var page = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("report").Funcs(template.FuncMap{
		"num":  groupDigits,
		"dur":  func(s int64) string { return duration.Format(time.Duration(s) * time.Second) },
		"kind": func(i int) string { return fmt.Sprintf("k%d", i+1) },
		"join": strings.Join,
		"sub":  func(a, b float64) float64 { return a - b },
		"add":  func(a, b float64) float64 { return a + b },
		"half": func(a float64) float64 { return a / 2 },
		// byKind writes counts by kind in the kinds' order: "auth_failed 8,
		// unknown_user 2".
		"byKind": func(counts map[string]int64, kinds []string) string {
			var parts []string
			for _, k := range kinds {
				if n := counts[k]; n > 0 {
					parts = append(parts, k+" "+groupDigits(n))
				}
			}
			return strings.Join(parts, ", ")
		},
		// target writes a banned prefix as people do: an address alone
		// without /32 or /128.
		"target": func(p string) string {
			if t, err := netip.ParsePrefix(p); err == nil {
				return bans.String(t)
			}
			return p
		},
		"chart": func(v view, id, title string) chartView {
			return chartView{C: v.Charts[id], ID: id, Title: title, Alt: v.Alts[id]}
		},
	}).Parse(pageText))
})

// chartView is what the "hbar" template draws.
type chartView struct {
	C              hbarChart
	ID, Title, Alt string
}

// view is what the page template reads.
type view struct {
	R        *Report
	CSP      string
	Loc      *time.Location
	Timeline stackChart
	TimeAlt  string
	// TimeCaption says the width of the bars.
	TimeCaption string
	Busy        []Bucket // the buckets with failures or bans, for the table
	Charts      map[string]hbarChart
	Alts        map[string]string
}

// WriteHTML writes r as one self-contained HTML page: inline style and
// SVG, no script, no external resource. Every attacker-written string is
// escaped by html/template.
func (r *Report) WriteHTML(w io.Writer) error {
	v := view{R: r, CSP: CSP, Timeline: timelineChart(r), Charts: map[string]hbarChart{}, Alts: map[string]string{}}
	v.TimeAlt = timelineAlt(r)
	v.TimeCaption = "Failures per " + duration.Format(time.Duration(r.BucketSeconds)*time.Second)
	if w := v.Timeline.Width; w > time.Duration(r.BucketSeconds)*time.Second {
		v.TimeCaption += ", drawn per " + duration.Format(w)
	}
	v.TimeCaption += "; a red mark under a bar: the rules would have banned then."
	for _, b := range r.Timeline {
		if len(b.Failures) > 0 || len(b.Bans) > 0 {
			v.Busy = append(v.Busy, b)
		}
	}
	var items []barItem
	for _, a := range r.Addresses {
		items = append(items, barItem{label: a.Address, counts: []int64{a.Failures}})
	}
	v.add("addresses", "Top attacking addresses by failures", items)
	items = nil
	for _, n := range r.Networks {
		items = append(items, barItem{label: n.Network, counts: []int64{n.Failures}})
	}
	v.add("networks", "Top attacking networks (/24, /64) by failures", items)
	v.add("accounts", "Most targeted accounts and user names by failures, by kind", userItems(r, r.Accounts))
	v.add("extensions", "Most dialled unknown extensions", userItems(r, r.Extensions))
	items = nil
	for _, s := range r.Services {
		c := make([]int64, len(r.Kinds))
		for i, k := range r.Kinds {
			c[i] = s.ByKind[k]
		}
		items = append(items, barItem{label: s.Service, counts: c})
	}
	v.add("services", "Failures by service attacked, by kind", items)
	items = nil
	for _, a := range r.BelowRules {
		items = append(items, barItem{label: a.Address, counts: []int64{a.Failures}})
	}
	v.add("below", "Addresses never banned, by failures", items)
	return page().Execute(w, v)
}

func (v *view) add(name, what string, items []barItem) {
	v.Charts[name] = newHbarChart(items)
	if len(items) == 0 {
		v.Alts[name] = what + ": none."
		return
	}
	var parts []string
	for _, it := range items[:min(5, len(items))] {
		var n int64
		for _, c := range it.counts {
			n += c
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", it.label, groupDigits(n)))
	}
	v.Alts[name] = fmt.Sprintf("%s: %s. The table below lists all %d.", what, strings.Join(parts, ", "), len(items))
}

func userItems(r *Report, users []UserRow) []barItem {
	var items []barItem
	for _, u := range users {
		c := make([]int64, len(r.Kinds))
		for i, k := range r.Kinds {
			c[i] = u.ByKind[k]
		}
		items = append(items, barItem{label: u.User, counts: c})
	}
	return items
}

// timelineAlt says in words what the timeline shows.
func timelineAlt(r *Report) string {
	if len(r.Timeline) == 0 {
		return "No failures in the logs."
	}
	var peak Bucket
	var most int64
	for _, b := range r.Timeline {
		if t := b.Total(); t > most {
			peak, most = b, t
		}
	}
	width := duration.Format(time.Duration(r.BucketSeconds) * time.Second)
	return fmt.Sprintf("Failures per %s from %s to %s, stacked by kind: %s failures in all, at most %s in the %s from %s; the rules would have banned %s times. The table below gives every %s with failures or bans.",
		width, minute(r.Timeline[0].Start), minute(r.Timeline[len(r.Timeline)-1].Start), groupDigits(r.Totals.Failures),
		groupDigits(most), width, minute(peak.Start), groupDigits(r.Totals.Bans), width)
}

// minute writes a bucket's start.
func minute(t time.Time) string { return t.Format("2006-01-02 15:04") }
