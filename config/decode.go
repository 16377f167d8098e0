package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/sipguard/sipguard/duration"
	"github.com/sipguard/sipguard/internal/didyoumean"
)

// Error is one problem in a config file, with its position:
// "rules.toml:12: rule[1].find_time: must be positive".
type Error struct {
	File string // "" for the built-in config
	Line int    // 0 when unknown
	Key  string // key path: "rule[1].find_time", "allow.addresses[0]"
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.File == "" {
		b.WriteString("built-in config")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// decoder collects the problems of one file.
type decoder struct {
	file  string
	lines map[string]int
	errs  []*Error
}

func (d *decoder) errorf(key, format string, args ...any) {
	line := 0
	for k := key; k != ""; {
		if l, ok := d.lines[k]; ok {
			line = l
			break
		}
		// Fall back to the nearest enclosing key: "rule[1].x" -> "rule[1]".
		if i := strings.LastIndexAny(k, ".["); i > 0 {
			k = k[:i]
		} else {
			k = ""
		}
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) err() error {
	sort.SliceStable(d.errs, func(i, j int) bool { return d.errs[i].Line < d.errs[j].Line })
	errs := make([]error, len(d.errs))
	for i, e := range d.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// decode reads data (the content of file) over the config base returns
// (called once data is parsed), then validates it.
func decode(file string, data []byte, base func() *Config) (*Config, error) {
	d := &decoder{file: file}
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{File: file, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}
		}
		return nil, &Error{File: file, Msg: err.Error()}
	}
	d.lines = keyLines(string(data))
	cfg := base()
	d.decode(reflect.ValueOf(cfg).Elem(), doc, "")
	if len(d.errs) == 0 {
		for _, e := range cfg.Validate() {
			d.errorf(e.Key, "%v", e.Err)
		}
	}
	if len(d.errs) > 0 {
		return nil, d.err()
	}
	cfg.File = file
	return cfg, nil
}

var (
	durationType   = reflect.TypeFor[Duration]()
	stringListType = reflect.TypeFor[StringList]()
)

// scalars are the kinds of the config's plain fields, each with the Go
// type BurntSushi/toml decodes its TOML value to and the words for it.
var scalars = map[reflect.Kind]struct {
	from reflect.Type
	want string
}{
	reflect.String:  {reflect.TypeFor[string](), "a string"},
	reflect.Bool:    {reflect.TypeFor[bool](), "true or false"},
	reflect.Int:     {reflect.TypeFor[int64](), "an integer"},
	reflect.Float64: {reflect.TypeFor[float64](), "a number"},
}

// decode stores v into rv, reporting type mismatches and unknown keys
// under path. Keys must match exactly: TOML is case-sensitive, and
// BurntSushi/toml's case-insensitive fallback would accept BAN_TIME.
func (d *decoder) decode(rv reflect.Value, v any, path string) {
	switch {
	case rv.Type() == durationType:
		d.decodeDuration(rv, v, path)
		return
	case rv.Type() == stringListType:
		if str, ok := v.(string); ok {
			rv.Set(reflect.ValueOf(StringList{str}))
			return
		}
	}
	switch rv.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			d.errorf(path, "must be a table, not %s", tomlType(v))
			return
		}
		d.decodeStruct(rv, m, path)
	case reflect.Slice:
		d.decodeSlice(rv, v, path)
	default:
		s, ok := scalars[rv.Kind()]
		if !ok {
			panic("config: unsupported field type " + rv.Type().String())
		}
		if n, isInt := v.(int64); isInt && rv.Kind() == reflect.Float64 {
			v = float64(n) // factor = 2 is a number too
		}
		x := reflect.ValueOf(v)
		if x.Type() != s.from {
			d.errorf(path, "must be %s, not %s", s.want, tomlType(v))
			return
		}
		rv.Set(x.Convert(rv.Type()))
	}
}

func (d *decoder) decodeDuration(rv reflect.Value, v any, path string) {
	switch x := v.(type) {
	case string:
		dur, err := duration.Parse(x)
		if err != nil {
			d.errorf(path, "%v", err)
			return
		}
		rv.SetInt(int64(dur))
	case int64, float64:
		d.errorf(path, "%v is a bare number; a duration needs a unit, e.g. \"%vs\"", x, x)
	default:
		d.errorf(path, "must be a duration string such as \"10m\", not %s", tomlType(v))
	}
}

// decodeSlice stores an array, or an array of tables, each table starting
// from its defaults.
func (d *decoder) decodeSlice(rv reflect.Value, v any, path string) {
	list, ok := v.([]any)
	if maps, isMaps := v.([]map[string]any); isMaps {
		list, ok = make([]any, len(maps)), true
		for i, m := range maps {
			list[i] = m
		}
	}
	if !ok {
		d.errorf(path, "must be an array, not %s", tomlType(v))
		return
	}
	out := reflect.MakeSlice(rv.Type(), len(list), len(list))
	for i, e := range list {
		if def, ok := out.Index(i).Addr().Interface().(interface{ setDefaults() }); ok {
			def.setDefaults()
		}
		d.decode(out.Index(i), e, fmt.Sprintf("%s[%d]", path, i))
	}
	rv.Set(out)
}

func (d *decoder) decodeStruct(rv reflect.Value, m map[string]any, path string) {
	t := rv.Type()
	fields := map[string]int{}
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("toml"); tag != "" && tag != "-" {
			fields[tag] = i
		}
	}
	for k, v := range m {
		p := join(path, k)
		i, ok := fields[k]
		if !ok {
			d.errorf(p, "unknown key%s", suggest(k, fields))
			continue
		}
		d.decode(rv.Field(i), v, p)
	}
}

// suggest names the known key a misspelt one probably meant.
func suggest(k string, fields map[string]int) string {
	names := make([]string, 0, len(fields))
	for f := range fields {
		names = append(names, f)
	}
	sort.Strings(names)
	switch f, sameButCase, ok := didyoumean.Closest(k, names); {
	case sameButCase:
		return fmt.Sprintf(" (did you mean %q? keys are case-sensitive)", f)
	case ok:
		return fmt.Sprintf(" (did you mean %q?)", f)
	}
	return " (known: " + strings.Join(names, ", ") + ")"
}

func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	default:
		return "a date/time"
	}
}
