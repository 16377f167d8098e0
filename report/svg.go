package report

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// The charts are SVG written by hand: bars are rectangles whose classes
// the page's style colours (light, dark and print), so the page needs no
// script. Coordinates are in the viewBox; the SVG scales to the page.

const (
	chartW     = 960
	stackH     = 260
	plotLeft   = 56 // room for the y axis labels
	plotTop    = 14
	plotBottom = 40 // room for the x labels and the ban marks
	maxBars    = 168
	hbarRow    = 22
	hbarLabelW = 260
)

// stackChart is the timeline: failures per bucket stacked by kind, and a
// mark under each bucket where rules would have banned.
type stackChart struct {
	W, H, Left, Bottom float64
	Bars               []stackBar
	YTicks             []tick
	XTicks             []tick
	Width              time.Duration // of one bar
	Max                int64
}

type stackBar struct {
	X, W  float64
	Segs  []seg
	Bans  int64
	Title string
}

type seg struct {
	X, Y, W, H float64
	Class      string
}

type tick struct {
	Pos   float64
	Label string
}

// timelineChart draws r's timeline, merging buckets so at most maxBars
// bars are drawn.
func timelineChart(r *Report) stackChart {
	c := stackChart{W: chartW, H: stackH, Left: plotLeft, Bottom: stackH - plotBottom}
	n := len(r.Timeline)
	if n == 0 {
		return c
	}
	group := (n + maxBars - 1) / maxBars
	c.Width = time.Duration(int64(group)*r.BucketSeconds) * time.Second
	type agg struct {
		start time.Time
		kinds []int64
		total int64
		bans  int64
	}
	var bars []agg
	for i := 0; i < n; i += group {
		a := agg{start: r.Timeline[i].Start, kinds: make([]int64, len(r.Kinds))}
		for _, b := range r.Timeline[i:min(i+group, n)] {
			for k, name := range r.Kinds {
				a.kinds[k] += b.Failures[name]
				a.total += b.Failures[name]
			}
			for _, v := range b.Bans {
				a.bans += v
			}
		}
		c.Max = max(c.Max, a.total)
		bars = append(bars, a)
	}
	top := niceMax(c.Max)
	plotW := c.W - c.Left - 8
	plotH := c.Bottom - plotTop
	bw := plotW / float64(len(bars))
	for i, a := range bars {
		b := stackBar{X: c.Left + float64(i)*bw, W: math.Max(bw-1, 0.5), Bans: a.bans}
		y := c.Bottom
		var parts []string
		for k, v := range a.kinds {
			if v == 0 {
				continue
			}
			h := float64(v) / float64(top) * plotH
			y -= h
			b.Segs = append(b.Segs, seg{X: b.X, Y: y, W: b.W, H: h, Class: fmt.Sprintf("k%d", k+1)})
			parts = append(parts, fmt.Sprintf("%d %s", v, r.Kinds[k]))
		}
		b.Title = fmt.Sprintf("%s: %d failures", a.start.Format("2006-01-02 15:04"), a.total)
		if len(parts) > 0 {
			b.Title += " (" + strings.Join(parts, ", ") + ")"
		}
		if a.bans > 0 {
			b.Title += fmt.Sprintf("; %d bans", a.bans)
		}
		c.Bars = append(c.Bars, b)
	}
	for _, f := range []float64{0, 0.5, 1} {
		c.YTicks = append(c.YTicks, tick{Pos: c.Bottom - f*plotH, Label: groupDigits(int64(f * float64(top)))})
	}
	// About eight time labels, on bars.
	every := max(1, len(bars)/8)
	layout := "01-02 15:04"
	if c.Width >= 24*time.Hour {
		layout = "2006-01-02"
	}
	for i := 0; i < len(bars); i += every {
		c.XTicks = append(c.XTicks, tick{Pos: c.Bars[i].X, Label: bars[i].start.Format(layout)})
	}
	return c
}

// hbarChart is a top-N list as horizontal bars.
type hbarChart struct {
	W, H, LabelW float64
	Rows         []hbar
}

type hbar struct {
	Y     float64
	Label string // cut to fit; attacker-written for accounts: the template escapes it
	Full  string
	Value int64
	Segs  []hseg
	End   float64 // where the value is written
}

type hseg struct {
	X, Y, W float64
	Class   string
}

// barItem is one row to draw: its label and its counts by class.
type barItem struct {
	label  string
	counts []int64 // by kind (class k1...), or one count (class bar)
}

func newHbarChart(items []barItem) hbarChart {
	c := hbarChart{W: chartW, LabelW: hbarLabelW, H: float64(len(items))*hbarRow + 4}
	var most int64
	for _, it := range items {
		var t int64
		for _, v := range it.counts {
			t += v
		}
		most = max(most, t)
	}
	plotW := c.W - c.LabelW - 80
	for i, it := range items {
		row := hbar{Y: float64(i)*hbarRow + 2, Label: cutLabel(it.label), Full: it.label}
		x := c.LabelW
		for k, v := range it.counts {
			if v == 0 {
				continue
			}
			w := float64(v) / float64(max(most, 1)) * plotW
			class := "bar"
			if len(it.counts) > 1 {
				class = fmt.Sprintf("k%d", k+1)
			}
			row.Segs = append(row.Segs, hseg{X: x, Y: row.Y, W: math.Max(w, 1), Class: class})
			x += w
			row.Value += v
		}
		row.End = x + 6
		c.Rows = append(c.Rows, row)
	}
	return c
}

// niceMax rounds n up to 1, 2 or 5 times a power of ten.
func niceMax(n int64) int64 {
	if n <= 1 {
		return 1
	}
	p := int64(1)
	for p*10 < n {
		p *= 10
	}
	for _, m := range []int64{1, 2, 5, 10} {
		if m*p >= n {
			return m * p
		}
	}
	return 10 * p
}

// groupDigits writes n with thousands separators: 1,234,567.
func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// cutLabel cuts a chart label to 36 runes: the table beside the chart has
// it whole.
func cutLabel(s string) string {
	r := []rune(s)
	if len(r) <= 36 {
		return s
	}
	return string(r[:35]) + "…"
}
