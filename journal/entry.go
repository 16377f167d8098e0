package journal

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"
)

// Entry is one journal entry admitted by a Match.
type Entry struct {
	Time    time.Time // __REALTIME_TIMESTAMP: when journald received it
	Unit    string    // _SYSTEMD_UNIT
	Comm    string    // _COMM
	UID     int64     // _UID, -1 when missing
	PID     int64     // _PID, 0 when missing
	Host    string    // _HOSTNAME
	Ident   string    // SYSLOG_IDENTIFIER: what the program calls itself (not trusted)
	Message []byte    // MESSAGE, as written
}

// fields are the fields journalctl is asked for; it adds __CURSOR and
// __REALTIME_TIMESTAMP (and two more) itself.
const fields = "MESSAGE,_SYSTEMD_UNIT,_COMM,_UID,_PID,_HOSTNAME,SYSLOG_IDENTIFIER"

// rawEntry is an entry as `journalctl --output=json --all` writes it: a
// field is a string, an array of byte values when it is not printable
// UTF-8 (a control character, invalid UTF-8), an array of those when the
// entry has it several times, or null.
type rawEntry struct {
	Cursor   string          `json:"__CURSOR"`
	Realtime string          `json:"__REALTIME_TIMESTAMP"`
	Message  json.RawMessage `json:"MESSAGE"`
	Unit     json.RawMessage `json:"_SYSTEMD_UNIT"`
	Comm     json.RawMessage `json:"_COMM"`
	UID      json.RawMessage `json:"_UID"`
	PID      json.RawMessage `json:"_PID"`
	Host     json.RawMessage `json:"_HOSTNAME"`
	Ident    json.RawMessage `json:"SYSLOG_IDENTIFIER"`
}

var errNoEntry = errors.New("not a journal entry: no cursor, time or message")

// parseEntry reads one line of journalctl's JSON output into e and
// returns the entry's cursor. An entry without a single MESSAGE is an
// error; a trusted field that is missing or not single is left empty, so
// that it matches nothing.
func parseEntry(line []byte, e *Entry) (string, error) {
	var r rawEntry
	if err := json.Unmarshal(line, &r); err != nil {
		return "", err
	}
	us, err := strconv.ParseInt(r.Realtime, 10, 64)
	msg, ok := value(r.Message)
	if r.Cursor == "" || err != nil || !ok {
		return r.Cursor, errNoEntry
	}
	*e = Entry{Time: time.UnixMicro(us), Message: msg, UID: -1}
	e.Unit = text(r.Unit)
	e.Comm = text(r.Comm)
	e.Host = text(r.Host)
	e.Ident = text(r.Ident)
	if u, err := strconv.ParseUint(text(r.UID), 10, 32); err == nil {
		e.UID = int64(u)
	}
	if p, err := strconv.ParseInt(text(r.PID), 10, 64); err == nil && p > 0 {
		e.PID = p
	}
	return r.Cursor, nil
}

// value reads one field's single value: a string, or an array of byte
// values. Several values (an array of those), null (a value journalctl
// left out) or anything else is no value.
func value(raw json.RawMessage) ([]byte, bool) {
	if len(raw) == 0 {
		return nil, false
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, false
		}
		return []byte(s), true
	case '[':
		var vals []json.RawMessage
		if json.Unmarshal(raw, &vals) != nil {
			return nil, false
		}
		b := make([]byte, 0, len(vals))
		for _, v := range vals {
			n, err := strconv.ParseUint(string(v), 10, 8)
			if err != nil {
				return nil, false
			}
			b = append(b, byte(n))
		}
		return b, true
	}
	return nil, false
}

// text is a field's single value as text, "" when it has none.
func text(raw json.RawMessage) string {
	b, _ := value(raw)
	return string(b)
}

// AppendLine appends the entry as one syslog line (see the package
// documentation) and returns the extended buffer.
func (e *Entry) AppendLine(dst []byte) []byte {
	dst = e.Time.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000000Z07:00")
	dst = append(dst, ' ')
	dst = append(dst, token(e.Host, "localhost")...)
	dst = append(dst, ' ')
	dst = append(dst, token(e.Comm, token(e.Ident, "-"))...)
	dst = append(dst, '[')
	dst = strconv.AppendInt(dst, e.PID, 10)
	dst = append(dst, "]: "...)
	for _, c := range e.Message {
		if c < ' ' && c != '\t' && c != 0x1b || c == 0x7f {
			dst = append(dst, '#', '0'+c>>6, '0'+c>>3&7, '0'+c&7)
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

// token returns s when it can stand as one word of a syslog line's
// header (a host name, a program name), else def.
func token(s, def string) string {
	if s == "" || len(s) > 64 {
		return def
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || c == '[' || c == ']' || c == ':' {
			return def
		}
	}
	return s
}
