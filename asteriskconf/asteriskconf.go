// Package asteriskconf reads Asterisk's configuration files the way
// Asterisk's own reader (main/config.c) does, so that sipguard audit sees
// the settings Asterisk runs with: sections, templates "[t](!)",
// inheritance "[x](t1,t2)", additions "[x](+)", "#include" and
// "#tryinclude" with globs, "=>", "+=", ";" and ";-- --;" comments and "\;"
// escapes. Every value keeps the file and line it was written on, through
// includes and inheritance.
//
// It never runs anything: "#exec" is recorded (sipguard audit reports it)
// and not executed. It reads through an fs.FS rooted at "/" (os.DirFS("/")
// on a host, fstest.MapFS in tests), refuses what is not a regular file,
// bounds the include depth (Asterisk's 10), the number of files and their
// size, and detects include cycles. What Asterisk would warn about or
// refuse is a Problem with its position, never a panic or a lost file.
package asteriskconf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// Pos is where something was written: an absolute file path and a line
// (from 1).
type Pos struct {
	File string `json:"file"`
	Line int    `json:"line"`
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// Var is one "name = value" (or "name => value") line.
type Var struct {
	Name  string
	Value string
	Pos   Pos
	// Object is true for "=>".
	Object bool
	// Inherited is true for a variable copied from a template; Pos is
	// still the line in the template.
	Inherited bool
}

// Section is one "[name]" and its variables, inherited ones first, in
// order.
type Section struct {
	Name string
	Pos  Pos
	// Template is true for "[name](!)": modules skip it.
	Template bool
	// Inherits names the templates given in the header, in order.
	Inherits []string
	Vars     []Var
}

// Last returns the last variable named name (case-insensitive): the value
// in force for the modules that walk a section in order, as chan_sip,
// chan_pjsip's sorcery and manager do, and an own value overrides an
// inherited one.
func (s *Section) Last(name string) (Var, bool) {
	for i := len(s.Vars) - 1; i >= 0; i-- {
		if strings.EqualFold(s.Vars[i].Name, name) {
			return s.Vars[i], true
		}
	}
	return Var{}, false
}

// Value returns the value of Last(name), or "" when it is not set.
func (s *Section) Value(name string) string {
	v, _ := s.Last(name)
	return v.Value
}

// All returns every variable named name (case-insensitive), in order: the
// values of a list such as allow, permit or include.
func (s *Section) All(name string) []Var {
	var out []Var
	for _, v := range s.Vars {
		if strings.EqualFold(v.Name, name) {
			out = append(out, v)
		}
	}
	return out
}

// Directive is an "#include", "#tryinclude" or "#exec" line.
type Directive struct {
	Kind string // "include", "tryinclude" or "exec"
	Arg  string
	Pos  Pos
}

// Problem is something Asterisk would warn about or refuse, with where.
type Problem struct {
	Pos Pos
	Msg string
}

func (p Problem) String() string { return p.Pos.String() + ": " + p.Msg }

// Config is one configuration file as Asterisk reads it, with everything it
// includes.
type Config struct {
	// File is the main file's absolute path.
	File string
	// Files lists every file read, the main one first.
	Files    []string
	Sections []*Section
	// Includes and Execs are the directives met, in order. An #exec is
	// never run.
	Includes []Directive
	Execs    []Directive
	Problems []Problem
}

// Section returns the first non-template section named name
// (case-sensitive, as Asterisk's categories are).
func (c *Config) Section(name string) *Section {
	for _, s := range c.Sections {
		if s.Name == name && !s.Template {
			return s
		}
	}
	return nil
}

// Named returns the non-template sections named name, in order: modules
// such as pbx_config merge them.
func (c *Config) Named(name string) []*Section {
	var out []*Section
	for _, s := range c.Sections {
		if s.Name == name && !s.Template {
			out = append(out, s)
		}
	}
	return out
}

// Active returns the sections modules use: all but templates.
func (c *Config) Active() []*Section {
	var out []*Section
	for _, s := range c.Sections {
		if !s.Template {
			out = append(out, s)
		}
	}
	return out
}

// Limits bound what one Load reads.
const (
	// MaxDepth is Asterisk's MAX_INCLUDE_LEVEL: the main file is level 1.
	MaxDepth = 10
	// MaxFiles bounds the files one Load reads (globs can match many).
	MaxFiles = 1000
	// MaxFileSize bounds one file; a larger one is refused.
	MaxFileSize = 16 << 20
	// maxLine is Asterisk's line buffer: a longer line is skipped.
	maxLine = 8191
	// maxNestedComments is Asterisk's MAX_NESTED_COMMENTS.
	maxNestedComments = 128
)

// ErrNotRegular is the error for a path that is not a regular file.
var ErrNotRegular = errors.New("not a regular file")

// Loader reads configuration files from FS, a file system rooted at "/":
// the file "/etc/asterisk/sip.conf" is "etc/asterisk/sip.conf" in it.
type Loader struct {
	FS fs.FS
	// Dir is the absolute configuration directory (astetcdir): relative
	// file names and #include paths are taken from it, as Asterisk does.
	Dir string
}

// Load reads the file name (relative to Dir, or absolute) and what it
// includes. The error is for a main file that cannot be read at all (it is
// missing: fs.ErrNotExist, or unreadable, or not a regular file); every
// other trouble is a Problem in the Config.
func (l *Loader) Load(name string) (*Config, error) {
	r := &reader{l: l, cfg: &Config{File: l.abs(name)}}
	data, err := r.read(r.cfg.File)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", r.cfg.File, err)
	}
	r.parse(r.cfg.File, data, 1, []string{r.cfg.File})
	return r.cfg, nil
}

// abs makes name absolute against Dir, and clean.
func (l *Loader) abs(name string) string {
	if !strings.HasPrefix(name, "/") {
		name = l.Dir + "/" + name
	}
	return path.Clean(name)
}

// reader holds one Load's state: the config built so far and the section
// Asterisk calls current, where an included file's first lines go.
type reader struct {
	l       *Loader
	cfg     *Config
	current *Section
}

func (r *reader) problem(pos Pos, format string, args ...any) {
	r.cfg.Problems = append(r.cfg.Problems, Problem{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// read reads one regular file of at most MaxFileSize bytes.
func (r *reader) read(abs string) ([]byte, error) {
	if len(r.cfg.Files) >= MaxFiles {
		return nil, fmt.Errorf("more than %d files read", MaxFiles)
	}
	name := strings.TrimPrefix(abs, "/")
	if name == "" {
		name = "."
	}
	// Stat before opening: opening a FIFO blocks until a writer comes.
	st, err := fs.Stat(r.l.FS, name)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w (%s)", ErrNotRegular, st.Mode().Type())
	}
	f, err := r.l.FS.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Checked again on what was opened: the path may have changed.
	if st, err = f.Stat(); err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w (%s)", ErrNotRegular, st.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxFileSize)
	}
	r.cfg.Files = append(r.cfg.Files, abs)
	return data, nil
}

// parse reads one file's text at include level depth; stack lists the
// files being read, outermost first, to detect cycles.
func (r *reader) parse(file string, data []byte, depth int, stack []string) {
	cur := r.current
	comment := 0
	lineno := 0
	for len(data) > 0 {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		lineno++
		pos := Pos{File: file, Line: lineno}
		if len(line) > maxLine {
			r.problem(pos, "line longer than %d bytes: skipped, as Asterisk does", maxLine)
			continue
		}
		// A C string ends at its first NUL.
		if i := bytes.IndexByte(line, 0); i >= 0 {
			line = line[:i]
		}
		text, ok := stripComments(string(line), &comment)
		if !ok {
			continue
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		switch text[0] {
		case '[':
			cur = r.header(text, pos)
			if cur == nil {
				// Asterisk refuses the file here; the settings that
				// follow belong to no section anyone uses.
				cur = &Section{Pos: pos}
			}
		case '#':
			r.directive(text, pos, depth, stack)
		default:
			r.variable(text, pos, cur)
		}
	}
	if comment > 0 {
		r.problem(Pos{File: file, Line: lineno}, "unterminated ;-- comment at the end of the file")
	}
}

// stripComments removes comments from one line the way config.c does:
// ";" ends the line unless escaped as "\;" (the backslash goes); ";--"
// (not ";---") opens a block comment, "--;" closes one; blocks nest. depth
// carries the nesting from line to line; a stray "--;" takes it below zero,
// which (as in Asterisk) makes the following lines comments until a ";--"
// brings it back. ok is false when no part of the line is text.
func stripComments(line string, depth *int) (string, bool) {
	on := *depth == 0
	ok := on
	var out []byte
	start := 0 // where config.c's scan resumes after a comment token
	for i := 0; i < len(line); i++ {
		c := line[i]
		if c != ';' {
			if on {
				out = append(out, c)
			}
			continue
		}
		switch {
		case i > start && line[i-1] == '\\':
			if on && len(out) > 0 && out[len(out)-1] == '\\' {
				out[len(out)-1] = ';'
			}
			start = i + 1
		case strings.HasPrefix(line[i:], ";--") && !strings.HasPrefix(line[i:], ";---"):
			if *depth < maxNestedComments {
				*depth++
				on = false
				i += 2
				start = i + 1
			}
		case i >= start+2 && line[i-2:i] == "--":
			*depth--
			start = i + 1
			if *depth == 0 {
				// Text after the comment joins the text before it.
				on, ok = true, true
			} else if on {
				out = append(out, c)
			}
		default:
			if *depth == 0 {
				return string(out), ok
			}
			if on {
				out = append(out, c)
			}
			start = i + 1
		}
	}
	return string(out), ok
}

// header reads a "[name](options)" line and returns the section lines now
// go to (nil when the header is refused).
func (r *reader) header(text string, pos Pos) *Section {
	end := strings.IndexByte(text, ']')
	if end < 0 {
		r.problem(pos, "no closing ']' in a section header: Asterisk refuses the file")
		return nil
	}
	s := &Section{Name: text[1:end], Pos: pos}
	rest := text[end+1:]
	if !strings.HasPrefix(rest, "(") {
		r.appendSection(s)
		return s
	}
	close := strings.IndexByte(rest, ')')
	if close < 0 {
		r.problem(pos, "no closing ')' in a section header: Asterisk refuses the file")
		return nil
	}
	target := s
	for _, opt := range strings.Split(rest[1:close], ",") {
		switch {
		case opt == "!":
			target.Template = true
		case strings.HasPrefix(opt, "+"):
			existing := r.find(s.Name, false)
			if existing == nil {
				r.problem(pos, "addition to section [%s], which does not exist: Asterisk refuses the file", s.Name)
				return nil
			}
			existing.Template = existing.Template || s.Template
			existing.Vars = append(existing.Vars, s.Vars...)
			s.Vars = nil
			target = existing
		default:
			base := r.find(opt, true)
			if base == nil {
				r.problem(pos, "inherits from [%s], which does not exist: Asterisk refuses the file", opt)
				return nil
			}
			target.Inherits = append(target.Inherits, opt)
			for _, v := range base.Vars {
				v.Inherited = true
				target.Vars = append(target.Vars, v)
			}
		}
	}
	if target == s {
		r.appendSection(s)
	}
	r.current = target
	return target
}

func (r *reader) appendSection(s *Section) {
	r.cfg.Sections = append(r.cfg.Sections, s)
	r.current = s
}

// find returns the first section named name: templates too when
// templates is true (inheritance), else only the others (additions).
func (r *reader) find(name string, templates bool) *Section {
	for _, s := range r.cfg.Sections {
		if s.Name == name && (templates || !s.Template) {
			return s
		}
	}
	return nil
}

// directive handles "#include", "#tryinclude" and "#exec".
func (r *reader) directive(text string, pos Pos, depth int, stack []string) {
	word, arg := text[1:], ""
	if i := strings.IndexFunc(word, func(c rune) bool { return c <= ' ' }); i >= 0 {
		word, arg = word[:i], strings.TrimSpace(word[i+1:])
	}
	kind := strings.ToLower(word)
	switch kind {
	case "include", "tryinclude", "exec":
	default:
		r.problem(pos, "unknown directive #%s: ignored", word)
		return
	}
	if arg == "" {
		r.problem(pos, "#%s without an argument: ignored", kind)
		return
	}
	if q := arg[0]; (q == '"' || q == '<') && len(arg) > 1 {
		closing := byte('"')
		if q == '<' {
			closing = '>'
		}
		if arg[len(arg)-1] == closing {
			arg = arg[1 : len(arg)-1]
		}
	}
	d := Directive{Kind: kind, Arg: arg, Pos: pos}
	if kind == "exec" {
		r.cfg.Execs = append(r.cfg.Execs, d)
		return
	}
	r.cfg.Includes = append(r.cfg.Includes, d)
	r.include(d, depth, stack)
}

// include reads the files an #include names: a glob, relative to Dir.
func (r *reader) include(d Directive, depth int, stack []string) {
	if depth >= MaxDepth {
		r.problem(d.Pos, "#%s %s: more than %d levels of includes: not read", d.Kind, d.Arg, MaxDepth)
		return
	}
	pattern := r.l.abs(d.Arg)
	matches, err := fs.Glob(r.l.FS, strings.TrimPrefix(pattern, "/"))
	if err != nil {
		r.problem(d.Pos, "#%s %s: %v", d.Kind, d.Arg, err)
		return
	}
	read := 0
	for _, m := range matches {
		abs := "/" + m
		if i := indexOf(stack, abs); i >= 0 {
			r.problem(d.Pos, "#%s %s: include cycle (%s): not read again", d.Kind, d.Arg,
				strings.Join(append(stack[i:], abs), " -> "))
			continue
		}
		data, err := r.read(abs)
		if err != nil {
			r.problem(d.Pos, "#%s %s: %s: %v: not read", d.Kind, d.Arg, abs, err)
			continue
		}
		read++
		r.parse(abs, data, depth+1, append(stack[:len(stack):len(stack)], abs))
	}
	if read == 0 && d.Kind == "include" {
		r.problem(d.Pos, "#include %s: no file read: Asterisk refuses the configuration", d.Arg)
	}
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// variable reads a "name = value", "name => value" or "name += value"
// line into cur.
func (r *reader) variable(text string, pos Pos, cur *Section) {
	if cur == nil {
		r.problem(pos, "a setting before any [section]: Asterisk refuses the file")
		return
	}
	escaped := text[0] == '\\'
	if escaped {
		text = text[1:]
		if text == "" || text[0] < 33 {
			r.problem(pos, "invalid escape: Asterisk refuses the file")
			return
		}
	}
	skip := 0
	if escaped {
		skip = 1 // an escaped first character is never the '='
	}
	eq := strings.IndexByte(text[skip:], '=')
	if eq < 0 {
		r.problem(pos, "no '=' on the line: ignored")
		return
	}
	eq += skip
	name, value := text[:eq], text[eq+1:]
	if eq > skip && text[eq-1] == '+' {
		name = strings.TrimSpace(text[:eq-1])
		if name == "" {
			r.problem(pos, "no name before '+=': ignored")
			return
		}
		for i := len(cur.Vars) - 1; i >= 0; i-- {
			if cur.Vars[i].Name == name {
				cur.Vars[i].Value = strings.TrimSpace(cur.Vars[i].Value + value)
				return
			}
		}
		cur.Vars = append(cur.Vars, Var{Name: name, Value: strings.TrimSpace(value), Pos: pos})
		return
	}
	object := strings.HasPrefix(value, ">")
	if object {
		value = value[1:]
	}
	name = strings.TrimSpace(name)
	if name == "" {
		r.problem(pos, "no name before '=': ignored")
		return
	}
	cur.Vars = append(cur.Vars, Var{Name: name, Value: strings.TrimSpace(value), Pos: pos, Object: object})
}
