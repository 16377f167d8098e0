package calls

import (
	"strconv"
	"time"
)

// CDRColumns says which optional columns cdr.conf's [csv] section adds
// to Master.csv, after the 16 fixed ones (cdr/cdr_csv.c build_csv_record).
type CDRColumns struct {
	UniqueID      bool // loguniqueid = yes
	UserField     bool // loguserfield = yes
	NewCDRColumns bool // newcdrcolumns = yes: peeraccount, linkedid, sequence
	UTC           bool // usegmtime = yes; otherwise times are the PBX's local time
}

// CDRReader reads Master.csv. Each record is a call (one leg) that ended.
type CDRReader struct {
	cols CDRColumns
	loc  *time.Location
	rec  csvRecord
}

// cdrMaxRecord is cdr_csv's record buffer: longer records are not written.
const cdrMaxRecord = 1024

// NewCDRReader reads records with cols; loc is the zone of local times.
func NewCDRReader(cols CDRColumns, loc *time.Location) *CDRReader {
	if cols.UTC || loc == nil {
		loc = time.UTC
	}
	return &CDRReader{cols: cols, loc: loc, rec: csvRecord{max: cdrMaxRecord}}
}

// Idle reports whether no record is under way across lines.
func (r *CDRReader) Idle() bool { return r.rec.idle() }

// Disposition values cdr_csv writes (ast_cdr_disp2str).
var dispositions = map[string]bool{"NO ANSWER": true, "FAILED": true, "BUSY": true, "ANSWERED": true, "CONGESTION": true}

// Line reads a physical line. On Matched, c is the call the record
// describes.
func (r *CDRReader) Line(l []byte, c *Call) Outcome {
	f, o := r.rec.record(l)
	if f == nil {
		return o
	}
	want := 16
	if r.cols.UniqueID {
		want++
	}
	if r.cols.UserField {
		want++
	}
	if r.cols.NewCDRColumns {
		want += 3
	}
	if len(f) != want {
		return DropMalformed
	}
	// accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp,
	// lastdata, start, answer, end, duration, billsec, disposition, amaflags
	if !dispositions[f[14]] || !isInt(f[12]) || !isInt(f[13]) {
		return DropMalformed
	}
	start, ok1 := r.time(f[9])
	answer, ok2 := r.time(f[10])
	end, ok3 := r.time(f[11])
	if !ok1 || !ok2 || !ok3 || start.IsZero() || end.IsZero() {
		return DropTime
	}
	*c = Call{Dialled: f[2], Context: f[3], Start: start, Answer: answer, End: end}
	c.Tech, c.Account = Account(f[5])
	switch {
	case r.cols.NewCDRColumns:
		c.ID = f[want-2] // linkedid: one per call, across its legs
	case r.cols.UniqueID:
		c.ID = f[16]
	default:
		c.ID = f[5] + "@" + f[9]
	}
	if f[14] != "ANSWERED" {
		c.Answer = time.Time{}
	}
	return Matched
}

// time reads cdr_csv's "%Y-%m-%d %T"; an empty field is the zero time.
func (r *CDRReader) time(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, true
	}
	t, err := time.ParseInLocation(time.DateTime, s, r.loc)
	return t, err == nil
}

func isInt(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}
