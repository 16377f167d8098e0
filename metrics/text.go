package metrics

import (
	"bufio"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// This file is the little of a Prometheus client sipguard needs: counters
// by label, one histogram, values read at scrape time, and the text
// exposition format (version 0.0.4). client_golang did it before, but its
// package init (with protobuf, procfs and runtime/metrics) cost every
// sipguard command 3 to 5 ms at start, scan included.
//
// The output is what client_golang wrote for the same values: families
// sorted by name, empty ones left out, label pairs sorted by name, series
// sorted by their label values, floats formatted alike.

// contentType is the text exposition format's; Prometheus reads it
// whatever it asked for.
const contentType = "text/plain; version=0.0.4; charset=utf-8"

// desc describes a metric family.
type desc struct {
	name, help, typ string   // typ: counter, gauge or histogram
	labels          []string // label names, in the order values are given
}

// series is one value of a family, its label values in desc.labels' order.
type series struct {
	values []string
	value  float64
}

// family is a metric family as one scrape sees it.
type family struct {
	*desc
	series []series
	hist   *histSnapshot // histograms only (without labels)
}

// snapshot holds one scrape's families.
type snapshot struct{ families map[string]*family }

func newSnapshot() *snapshot { return &snapshot{families: map[string]*family{}} }

// add adds a series to d's family. Label values are made valid UTF-8
// (invalid bytes become U+FFFD): Prometheus refuses a whole scrape for one
// invalid value, and client_golang panicked.
func (s *snapshot) add(d *desc, v float64, values ...string) {
	if len(values) != len(d.labels) {
		panic("metrics: " + d.name + ": " + strconv.Itoa(len(values)) + " label values for " + strconv.Itoa(len(d.labels)) + " labels")
	}
	f := s.family(d)
	vs := make([]string, len(values))
	for i, v := range values {
		vs[i] = strings.ToValidUTF8(v, "\uFFFD")
	}
	f.series = append(f.series, series{values: vs, value: v})
}

func (s *snapshot) family(d *desc) *family {
	f := s.families[d.name]
	if f == nil {
		f = &family{desc: d}
		s.families[d.name] = f
	}
	return f
}

// write writes the families in the text format: those with series, by
// name. A series whose labels repeat an earlier one's is left out, as
// client_golang left it out (its ContinueOnError): the rest of the scrape
// stands.
func (s *snapshot) write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, name := range slices.Sorted(maps.Keys(s.families)) {
		if f := s.families[name]; len(f.series) > 0 || f.hist != nil {
			f.write(bw)
		}
	}
	return bw.Flush()
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func (f *family) write(w *bufio.Writer) {
	w.WriteString("# HELP " + f.name + " ")
	helpEscaper.WriteString(w, f.help)
	w.WriteString("\n# TYPE " + f.name + " " + f.typ + "\n")
	if f.hist != nil {
		f.hist.write(w, f.name)
		return
	}
	// Label pairs are written sorted by name, and series sorted by their
	// values in that order.
	order := make([]int, len(f.labels))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return f.labels[order[i]] < f.labels[order[j]] })
	cmp := func(a, b series) int {
		for _, i := range order {
			if c := strings.Compare(a.values[i], b.values[i]); c != 0 {
				return c
			}
		}
		return 0
	}
	slices.SortStableFunc(f.series, cmp)
	for i, s := range f.series {
		if i > 0 && cmp(f.series[i-1], s) == 0 {
			continue
		}
		w.WriteString(f.name)
		for n, l := range order {
			if n == 0 {
				w.WriteByte('{')
			} else {
				w.WriteByte(',')
			}
			w.WriteString(f.labels[l] + `="`)
			labelEscaper.WriteString(w, s.values[l])
			w.WriteByte('"')
		}
		if len(order) > 0 {
			w.WriteByte('}')
		}
		w.WriteByte(' ')
		writeFloat(w, s.value)
		w.WriteByte('\n')
	}
}

// writeFloat writes f as client_golang's text encoder does.
func writeFloat(w *bufio.Writer, f float64) {
	if f == 0 { // -0 too
		w.WriteByte('0')
		return
	}
	// NaN, +Inf and -Inf come out as the format spells them.
	w.Write(strconv.AppendFloat(w.AvailableBuffer(), f, 'g', -1, 64))
}

// counterVec counts by label values: at most two labels, so that
// counting allocates nothing.
type counterVec struct {
	desc
	mu sync.Mutex
	n  map[[2]string]uint64
}

func newCounterVec(name, help string, labels ...string) *counterVec {
	if len(labels) > 2 {
		panic("metrics: " + name + ": more than 2 labels")
	}
	return &counterVec{desc: desc{name: name, help: help, typ: "counter", labels: labels}, n: map[[2]string]uint64{}}
}

// inc adds one to the series of values (as many as labels).
func (c *counterVec) inc(values ...string) {
	if len(values) != len(c.labels) {
		panic("metrics: " + c.name + ": wrong number of label values")
	}
	var k [2]string
	copy(k[:], values)
	c.mu.Lock()
	c.n[k]++
	c.mu.Unlock()
}

func (c *counterVec) collect(s *snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, n := range c.n {
		s.add(&c.desc, float64(n), k[:len(c.labels)]...)
	}
}

// histogram counts observations in buckets by upper bound.
type histogram struct {
	desc
	mu sync.Mutex
	histSnapshot
}

// histSnapshot is a histogram's state.
type histSnapshot struct {
	bounds []float64 // ascending; +Inf implied
	counts []uint64  // per bucket (not cumulative), the last one +Inf's
	sum    float64
	count  uint64
}

// exponentialBuckets returns n bounds, start times factor^i, computed as
// client_golang's ExponentialBuckets does (so they print alike).
func exponentialBuckets(start, factor float64, n int) []float64 {
	b := make([]float64, n)
	for i := range b {
		b[i] = start
		start *= factor
	}
	return b
}

func newHistogram(name, help string, bounds []float64) *histogram {
	return &histogram{
		desc:         desc{name: name, help: help, typ: "histogram"},
		histSnapshot: histSnapshot{bounds: bounds, counts: make([]uint64, len(bounds)+1)},
	}
}

func (h *histogram) observe(v float64) {
	i := sort.SearchFloat64s(h.bounds, v) // the first bound >= v: "le"
	h.mu.Lock()
	h.counts[i]++
	h.sum += v
	h.count++
	h.mu.Unlock()
}

func (h *histogram) collect(s *snapshot) {
	h.mu.Lock()
	snap := h.histSnapshot
	snap.counts = slices.Clone(h.counts)
	h.mu.Unlock()
	s.family(&h.desc).hist = &snap
}

func (h *histSnapshot) write(w *bufio.Writer, name string) {
	var cum uint64
	for i, n := range h.counts {
		cum += n
		w.WriteString(name + `_bucket{le="`)
		if i < len(h.bounds) {
			writeFloat(w, h.bounds[i])
		} else {
			w.WriteString("+Inf")
		}
		w.WriteString(`"} `)
		writeFloat(w, float64(cum))
		w.WriteByte('\n')
	}
	w.WriteString(name + "_sum ")
	writeFloat(w, h.sum)
	w.WriteString("\n" + name + "_count ")
	writeFloat(w, float64(h.count))
	w.WriteByte('\n')
}
