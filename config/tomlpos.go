package config

import (
	"strconv"
	"strings"
)

// keyLines returns the line of every key and array element of a TOML
// document, by path: "engine.max_tracked", "rule[1].find_time",
// "allow.addresses[0]". BurntSushi/toml reports no position for unknown
// keys and one shared position for the same key in every [[rule]], so the
// config loader finds lines itself. The document must already have parsed
// without error: this scanner is lenient and never fails.
func keyLines(src string) map[string]int {
	s := &posScanner{src: src, line: 1, lines: map[string]int{}, arrays: map[string]int{}}
	s.document()
	return s.lines
}

type posScanner struct {
	src    string
	i      int
	line   int
	lines  map[string]int
	arrays map[string]int // [[name]] seen so far
	table  string         // current table path
}

func (s *posScanner) peek() byte {
	if s.i < len(s.src) {
		return s.src[s.i]
	}
	return 0
}

func (s *posScanner) next() byte {
	c := s.peek()
	s.i++
	if c == '\n' {
		s.line++
	}
	return c
}

// space skips blanks, and newlines and comments too when nl is set.
func (s *posScanner) space(nl bool) {
	for s.i < len(s.src) {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.next()
		case c == '\n' && nl:
			s.next()
		case c == '#':
			for s.i < len(s.src) && s.peek() != '\n' {
				s.next()
			}
		default:
			return
		}
	}
}

func (s *posScanner) document() {
	for {
		s.space(true)
		if s.i >= len(s.src) {
			return
		}
		if s.peek() == '[' {
			s.header()
			continue
		}
		line := s.line
		key := s.key()
		if key == "" { // not a key: skip the line
			for s.i < len(s.src) && s.peek() != '\n' {
				s.next()
			}
			continue
		}
		s.space(false)
		if s.peek() == '=' {
			s.next()
		}
		path := join(s.table, key)
		s.lines[path] = line
		s.value(path)
	}
}

// header reads [table] or [[array]].
func (s *posScanner) header() {
	s.next()
	array := s.peek() == '['
	if array {
		s.next()
	}
	s.space(false)
	name := s.key()
	for s.i < len(s.src) && s.peek() != '\n' {
		s.next()
	}
	line := s.line
	if array {
		// [[parser.pattern]] after [[parser]] belongs to the last parser.
		path := name
		if head, rest, ok := strings.Cut(name, "."); ok {
			if n, ok := s.arrays[head]; ok {
				path = head + "[" + strconv.Itoa(n-1) + "]." + rest
			}
		}
		n := s.arrays[path]
		s.arrays[path] = n + 1
		s.table = path + "[" + strconv.Itoa(n) + "]"
	} else {
		// [rule.x] after [[rule]] belongs to the last rule.
		head, rest, _ := strings.Cut(name, ".")
		if n, ok := s.arrays[head]; ok && rest != "" {
			name = head + "[" + strconv.Itoa(n-1) + "]." + rest
		}
		s.table = name
	}
	s.lines[s.table] = line
}

// key reads a bare, quoted or dotted key and returns it dotted.
func (s *posScanner) key() string {
	var parts []string
	for {
		s.space(false)
		switch c := s.peek(); {
		case c == '"' || c == '\'':
			parts = append(parts, s.str())
		case isBare(c):
			start := s.i
			for isBare(s.peek()) {
				s.next()
			}
			parts = append(parts, s.src[start:s.i])
		default:
			return strings.Join(parts, ".")
		}
		s.space(false)
		if s.peek() != '.' {
			return strings.Join(parts, ".")
		}
		s.next()
	}
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// str reads a basic, literal or multi-line string and returns its raw text
// (escapes are not decoded: key names with escapes are not ours).
func (s *posScanner) str() string {
	q := s.next()
	multi := strings.HasPrefix(s.src[s.i:], string([]byte{q, q}))
	if multi {
		s.next()
		s.next()
	}
	start := s.i
	for s.i < len(s.src) {
		c := s.peek()
		if c == '\\' && q == '"' {
			s.next()
			s.next()
			continue
		}
		if c == q && (!multi || strings.HasPrefix(s.src[s.i:], string([]byte{q, q, q}))) {
			end := s.i
			if !multi {
				s.next()
				return s.src[start:end]
			}
			s.i += 3
			for k := 0; k < 2 && s.peek() == q; k++ { // """a"""" ends in a quote
				s.next()
				end++
			}
			return s.src[start:end]
		}
		if c == '\n' && !multi {
			return s.src[start:s.i]
		}
		s.next()
	}
	return s.src[start:]
}

// value skips a value, recording the lines of array elements and inline
// table keys under path.
func (s *posScanner) value(path string) {
	s.space(false)
	switch s.peek() {
	case '"', '\'':
		s.str()
	case '[':
		s.next()
		for n := 0; ; n++ {
			s.space(true)
			if s.peek() == ']' || s.i >= len(s.src) {
				s.next()
				return
			}
			elem := path + "[" + strconv.Itoa(n) + "]"
			s.lines[elem] = s.line
			s.value(elem)
			s.space(true)
			if s.peek() == ',' {
				s.next()
			}
		}
	case '{':
		s.next()
		for {
			s.space(false)
			if s.peek() == '}' || s.i >= len(s.src) || s.peek() == '\n' {
				s.next()
				return
			}
			line := s.line
			k := s.key()
			s.space(false)
			if s.peek() == '=' {
				s.next()
			}
			s.lines[join(path, k)] = line
			s.value(join(path, k))
			s.space(false)
			if s.peek() == ',' {
				s.next()
			}
		}
	default:
		for s.i < len(s.src) {
			switch s.peek() {
			case ',', ']', '}', '\n', '#':
				return
			}
			s.next()
		}
	}
}

func join(table, key string) string {
	if table == "" {
		return key
	}
	return table + "." + key
}
