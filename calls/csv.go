package calls

import (
	"errors"
	"strings"
)

// csvRecord assembles the records Asterisk's CSV writers produce (cdr_csv,
// and cel_custom with CSV_QUOTE) from physical lines: fields separated by
// commas, text fields in double quotes with quotes inside doubled, numbers
// bare. Neither writer escapes newlines, and a caller chooses the text of
// several fields (the dialled number may hold a URI-decoded newline), so a
// record may span lines. Doubled quotes are what make that unambiguous: a
// caller cannot end a quoted field, so the record ends where the writer's
// closing quote and newline are, never where the caller's text puts a
// newline. Reading fields across lines, as RFC 4180 does, therefore finds
// exactly the records written; a forged "line" inside a field stays inside
// that field.
//
// A record longer than max cannot have been written by the mapping the
// reader expects: it is dropped, and reading starts again at the next
// line (counted as lost sync by the caller).
type csvRecord struct {
	max    int
	buf    strings.Builder // the record so far, its lines joined by "\n"
	open   bool            // inside a quoted field at the end of buf
	fields []string
}

var (
	errTooLong  = errors.New("record longer than the format allows")
	errBadQuote = errors.New("quote inside an unquoted field, or text after a closing quote")
)

// line adds a physical line. It returns the record's fields once the
// record is complete (valid until the next call), nil while it goes on.
func (r *csvRecord) line(l []byte) ([]string, error) {
	if r.buf.Len() > 0 {
		r.buf.WriteByte('\n')
	}
	if r.buf.Len()+len(l) > r.max {
		r.reset()
		return nil, errTooLong
	}
	r.buf.Write(l)
	r.open = quoteOpen(l, r.open)
	if r.open {
		return nil, nil
	}
	rec := r.buf.String()
	r.reset()
	return r.split(rec)
}

// record is line as a reader's outcome: the record's fields once it is
// complete, or nil and Pending (it goes on) or why the line is dropped.
func (r *csvRecord) record(l []byte) ([]string, Outcome) {
	f, err := r.line(l)
	switch {
	case err == errTooLong:
		return nil, DropTooLong
	case err != nil:
		return nil, DropMalformed
	case f == nil:
		return nil, Pending
	}
	return f, Matched
}

// idle reports whether no record is under way.
func (r *csvRecord) idle() bool { return r.buf.Len() == 0 }

func (r *csvRecord) reset() { r.buf.Reset(); r.open = false }

// quoteOpen reports whether a quoted field is still open after l, given
// whether one was open before it.
func quoteOpen(l []byte, open bool) bool {
	for _, c := range l {
		if c == '"' {
			open = !open // a doubled quote toggles twice
		}
	}
	return open
}

// split cuts a complete record into fields, unquoting them.
func (r *csvRecord) split(rec string) ([]string, error) {
	r.fields = r.fields[:0]
	for {
		if strings.HasPrefix(rec, `"`) {
			var b strings.Builder
			i := 1
			for {
				j := strings.IndexByte(rec[i:], '"')
				if j < 0 {
					return nil, errBadQuote // cannot happen: the quotes balance
				}
				b.WriteString(rec[i : i+j])
				i += j + 1
				if i < len(rec) && rec[i] == '"' {
					b.WriteByte('"')
					i++
					continue
				}
				break
			}
			r.fields = append(r.fields, b.String())
			rec = rec[i:]
			if rec == "" {
				return r.fields, nil
			}
			if rec[0] != ',' {
				return nil, errBadQuote
			}
			rec = rec[1:]
			continue
		}
		i := strings.IndexByte(rec, ',')
		f := rec
		if i >= 0 {
			f = rec[:i]
		}
		if strings.ContainsRune(f, '"') {
			return nil, errBadQuote
		}
		r.fields = append(r.fields, f)
		if i < 0 {
			return r.fields, nil
		}
		rec = rec[i+1:]
	}
}
