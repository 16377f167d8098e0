package asteriskconf_test

import (
	"errors"
	"github.com/sipguard/sipguard/internal/testutil"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/sipguard/sipguard/asteriskconf"
)

// tree writes files (path relative to /etc/asterisk, or absolute under the
// root) into a real directory and returns a Loader rooted there.
func tree(t *testing.T, files map[string]string) *asteriskconf.Loader {
	t.Helper()
	root := t.TempDir()
	for name, text := range files {
		p := filepath.Join(root, "etc/asterisk", name)
		if strings.HasPrefix(name, "/") {
			p = filepath.Join(root, name)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return &asteriskconf.Loader{FS: os.DirFS(root), Dir: "/etc/asterisk"}
}

func load(t *testing.T, l *asteriskconf.Loader, name string) *asteriskconf.Config {
	t.Helper()
	c, err := l.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantVar(t *testing.T, s *asteriskconf.Section, name, value, pos string) {
	t.Helper()
	if s == nil {
		t.Fatalf("%s: no section", name)
	}
	v, ok := s.Last(name)
	if !ok {
		t.Fatalf("[%s] %s: not set", s.Name, name)
	}
	if v.Value != value || v.Pos.String() != pos {
		t.Errorf("[%s] %s: got %q at %s; want %q at %s", s.Name, name, v.Value, v.Pos, value, pos)
	}
}

func problems(c *asteriskconf.Config) string {
	var b strings.Builder
	for _, p := range c.Problems {
		b.WriteString(p.String() + "\n")
	}
	return b.String()
}

func TestLoad_TemplatesAndInheritance(t *testing.T) {
	l := tree(t, map[string]string{"pjsip.conf": `; a comment
[phone](!)
type=endpoint
context=internal
allow=!all,ulaw

[auth-tpl](!)   ; trailing comment
type=auth
auth_type=userpass

[1001](phone)
auth=1001
context=office

[1001-auth](auth-tpl)
password=1001
username=1001

[1001](+)
allow+=,alaw
mailboxes => 1001@default
`})
	c := load(t, l, "pjsip.conf")
	if p := problems(c); p != "" {
		t.Fatalf("problems:\n%s", p)
	}
	if got := len(c.Active()); got != 2 {
		t.Fatalf("active sections: got %d; want 2", got)
	}
	ep := c.Section("1001")
	wantVar(t, ep, "context", "office", "/etc/asterisk/pjsip.conf:13")
	wantVar(t, ep, "type", "endpoint", "/etc/asterisk/pjsip.conf:3")
	wantVar(t, ep, "allow", "!all,ulaw,alaw", "/etc/asterisk/pjsip.conf:5")
	wantVar(t, ep, "mailboxes", "1001@default", "/etc/asterisk/pjsip.conf:21")
	if v, _ := ep.Last("mailboxes"); !v.Object {
		t.Error("=> not recorded as an object")
	}
	if v, _ := ep.Last("type"); !v.Inherited {
		t.Error("type not marked inherited")
	}
	if got := len(ep.All("context")); got != 2 {
		t.Errorf("context values: got %d; want 2 (inherited and own)", got)
	}
	wantVar(t, c.Section("1001-auth"), "auth_type", "userpass", "/etc/asterisk/pjsip.conf:9")
	if c.Section("phone") != nil {
		t.Error("a template is returned as a section")
	}
}

func TestLoad_Comments(t *testing.T) {
	l := tree(t, map[string]string{"sip.conf": `[general]
a=1 ; comment
b=x\;y ; escaped semicolon kept
;-- a block
c=hidden
;-- nested --;
d=hidden too
--;
e=visible
f=be;--inline--;fore
g=2;---not a block
`})
	c := load(t, l, "sip.conf")
	g := c.Section("general")
	wantVar(t, g, "a", "1", "/etc/asterisk/sip.conf:2")
	wantVar(t, g, "b", "x;y", "/etc/asterisk/sip.conf:3")
	wantVar(t, g, "e", "visible", "/etc/asterisk/sip.conf:9")
	wantVar(t, g, "f", "before", "/etc/asterisk/sip.conf:10")
	wantVar(t, g, "g", "2", "/etc/asterisk/sip.conf:11")
	for _, hidden := range []string{"c", "d"} {
		if _, ok := g.Last(hidden); ok {
			t.Errorf("%s, inside a block comment, was read", hidden)
		}
	}
}

// TestLoad_StrayBlockEnd: a "--;" outside a block takes Asterisk's comment
// depth below zero, and it reads the following lines as comments.
func TestLoad_StrayBlockEnd(t *testing.T) {
	l := tree(t, map[string]string{"sip.conf": "[general]\nsecret=ab--;c\nallowguest=yes\n;--\nx=1\n"})
	g := load(t, l, "sip.conf").Section("general")
	wantVar(t, g, "secret", "ab--;c", "/etc/asterisk/sip.conf:2")
	if _, ok := g.Last("allowguest"); ok {
		t.Error("a line after a stray --; was read; Asterisk skips it")
	}
	wantVar(t, g, "x", "1", "/etc/asterisk/sip.conf:5")
}

func TestLoad_Includes(t *testing.T) {
	l := tree(t, map[string]string{
		"extensions.conf": `[globals]
#include "ext_globals.conf"
after=1
#tryinclude missing_*.conf
#include <ext.d/*.conf>
#include /opt/pbx/abs.conf
#exec /usr/local/bin/gen-dialplan --all
`,
		"ext_globals.conf":  "TRUNK=PJSIP/trunk\n[from-internal]\nexten => _X.,1,Dial(${TRUNK}/${EXTEN})\n",
		"ext.d/10-a.conf":   "[a]\nx=1\n",
		"ext.d/20-b.conf":   "[b]\ny=2\n",
		"/opt/pbx/abs.conf": "[abs]\nz=3\n",
	})
	c := load(t, l, "extensions.conf")
	if p := problems(c); p != "" {
		t.Fatalf("problems:\n%s", p)
	}
	// The included file starts in the includer's section; the includer
	// goes on in its own section after the include.
	wantVar(t, c.Section("globals"), "TRUNK", "PJSIP/trunk", "/etc/asterisk/ext_globals.conf:1")
	wantVar(t, c.Section("globals"), "after", "1", "/etc/asterisk/extensions.conf:3")
	wantVar(t, c.Section("from-internal"), "exten", "_X.,1,Dial(${TRUNK}/${EXTEN})", "/etc/asterisk/ext_globals.conf:3")
	wantVar(t, c.Section("a"), "x", "1", "/etc/asterisk/ext.d/10-a.conf:2")
	wantVar(t, c.Section("b"), "y", "2", "/etc/asterisk/ext.d/20-b.conf:2")
	wantVar(t, c.Section("abs"), "z", "3", "/opt/pbx/abs.conf:2")
	if len(c.Execs) != 1 || c.Execs[0].Arg != "/usr/local/bin/gen-dialplan --all" || c.Execs[0].Pos.Line != 7 {
		t.Errorf("execs: %+v", c.Execs)
	}
	want := []string{"/etc/asterisk/extensions.conf", "/etc/asterisk/ext_globals.conf", "/etc/asterisk/ext.d/10-a.conf",
		"/etc/asterisk/ext.d/20-b.conf", "/opt/pbx/abs.conf"}
	if strings.Join(c.Files, " ") != strings.Join(want, " ") {
		t.Errorf("files: got %q; want %q", c.Files, want)
	}
}

func TestLoad_Errors(t *testing.T) {
	t.Run("ErrNotExist", func(t *testing.T) {
		_, err := tree(t, nil).Load("sip.conf")
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("got %v; want fs.ErrNotExist", err)
		}
	})
	t.Run("ErrNotRegular", func(t *testing.T) {
		l := tree(t, map[string]string{"pjsip.conf": "[global]\n#include fifo.conf\n#include dir.conf\n"})
		dir := strings.TrimSuffix(fsRoot(t, l), "/")
		if err := syscall.Mkfifo(dir+"/etc/asterisk/fifo.conf", 0o644); err != nil {
			t.Fatal(err)
		}
		os.Mkdir(dir+"/etc/asterisk/dir.conf", 0o755)
		if err := syscall.Mkfifo(dir+"/etc/asterisk/main-fifo.conf", 0o644); err != nil {
			t.Fatal(err)
		}
		// Would block forever if a FIFO were opened for reading.
		if _, err := l.Load("main-fifo.conf"); !errors.Is(err, asteriskconf.ErrNotRegular) {
			t.Errorf("main FIFO: got %v; want ErrNotRegular", err)
		}
		c := load(t, l, "pjsip.conf")
		p := problems(c)
		for _, want := range []string{"pjsip.conf:2: #include fifo.conf: /etc/asterisk/fifo.conf: not a regular file",
			"pjsip.conf:3: #include dir.conf: /etc/asterisk/dir.conf: not a regular file"} {
			if !strings.Contains(p, want) {
				t.Errorf("problems:\n%s\nwant %q", p, want)
			}
		}
	})
	t.Run("Cycle", func(t *testing.T) {
		l := tree(t, map[string]string{"a.conf": "[s]\n#include b.conf\nx=1\n", "b.conf": "#include a.conf\ny=2\n"})
		c := load(t, l, "a.conf")
		if p := problems(c); !strings.Contains(p, "b.conf:1: #include a.conf: include cycle (/etc/asterisk/a.conf -> /etc/asterisk/b.conf -> /etc/asterisk/a.conf)") {
			t.Errorf("problems:\n%s", p)
		}
		wantVar(t, c.Section("s"), "y", "2", "/etc/asterisk/b.conf:2")
		wantVar(t, c.Section("s"), "x", "1", "/etc/asterisk/a.conf:3")
	})
	t.Run("Depth", func(t *testing.T) {
		files := map[string]string{}
		for i := range 15 {
			files[filepath.Base(levelName(i))] = "#include " + filepath.Base(levelName(i+1)) + "\n"
		}
		files["l00.conf"] = "[s]\n" + files["l00.conf"]
		c := load(t, tree(t, files), "l00.conf")
		if len(c.Files) != asteriskconf.MaxDepth {
			t.Errorf("files read: got %d; want %d", len(c.Files), asteriskconf.MaxDepth)
		}
		if p := problems(c); !strings.Contains(p, "l09.conf:1: #include l10.conf: more than 10 levels") {
			t.Errorf("problems:\n%s", p)
		}
	})
	t.Run("Refused", func(t *testing.T) {
		l := tree(t, map[string]string{"x.conf": "orphan=1\n[s\n[t](missing)\n[u](+)\n[ok]\nnovalue\n#include nothere.conf\n#frob x\n\\ =1\n" +
			strings.Repeat("a", 9000) + "=1\n"})
		c := load(t, l, "x.conf")
		p := problems(c)
		if ok := c.Section("ok"); ok == nil || len(ok.Vars) != 0 {
			t.Errorf("[ok]: %+v", ok)
		}
		for _, s := range c.Sections {
			if s.Name == "t" || s.Name == "u" {
				t.Errorf("refused header [%s] kept", s.Name)
			}
		}
		for _, want := range []string{"x.conf:1: a setting before any [section]", "x.conf:2: no closing ']'",
			"x.conf:3: inherits from [missing]", "x.conf:4: addition to section [u]", "x.conf:6: no '='",
			"x.conf:7: #include nothere.conf: no file read", "x.conf:8: unknown directive #frob", "x.conf:9: invalid escape",
			"x.conf:10: line longer than"} {
			if !strings.Contains(p, want) {
				t.Errorf("problems:\n%s\nwant %q", p, want)
			}
		}
	})
}

// TestLoad_RefusedHeader: the settings after a header Asterisk refuses do
// not land in the section before it.
func TestLoad_RefusedHeader(t *testing.T) {
	c := load(t, tree(t, map[string]string{"sip.conf": "[a]\nx=1\n[b](missing)\nallowguest=yes\n[c\nsecret=1\n"}), "sip.conf")
	a := c.Section("a")
	if len(a.Vars) != 1 || len(c.Sections) != 1 {
		t.Errorf("sections %d, [a] %+v", len(c.Sections), a.Vars)
	}
}

func levelName(i int) string {
	return "/etc/asterisk/l" + string(rune('0'+i/10)) + string(rune('0'+i%10)) + ".conf"
}

// fsRoot returns the directory a tree's Loader reads.
func fsRoot(t *testing.T, l *asteriskconf.Loader) string {
	t.Helper()
	f, err := l.FS.Open("etc/asterisk")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if osf, ok := f.(*os.File); ok {
		return strings.TrimSuffix(osf.Name(), "etc/asterisk")
	}
	t.Fatal("not an os.DirFS")
	return ""
}

// FuzzLoad: any main file and any included file give a Config or an error,
// never a panic; every variable has a name and a position in a file read.
func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		"[a](!)\nx=1\n[b](a,+)\ny+=2\n#include inc.conf\n",
		"[g]\na=b;--c\nd--;e\\;f\n;--;--\n--;--;\n",
		"[x](+)\n[y](!,y)\n#exec ls\n#tryinclude <*.conf>\n\\=x\n",
		"[s]\n#include main.conf\nexten => _X.,1,Dial(PJSIP/${EXTEN})\n",
	} {
		f.Add(s, "[i]\nk=v\n#include inc.conf\n")
	}
	f.Fuzz(func(t *testing.T, main, inc string) {
		m := fstest.MapFS{
			"etc/asterisk/main.conf": {Data: []byte(main)},
			"etc/asterisk/inc.conf":  {Data: []byte(inc)},
		}
		c, err := (&asteriskconf.Loader{FS: m, Dir: "/etc/asterisk"}).Load("main.conf")
		if err != nil {
			t.Fatal(err)
		}
		read := map[string]bool{}
		for _, f := range c.Files {
			read[f] = true
		}
		for _, s := range c.Sections {
			for _, v := range s.Vars {
				if v.Name == "" || !read[v.Pos.File] || v.Pos.Line < 1 {
					t.Fatalf("variable %+v in [%s]", v, s.Name)
				}
			}
		}
		for _, p := range c.Problems {
			_ = p.String()
		}
	})
}

// TestLoad_AsteriskSamples reads every *.conf of Asterisk's own samples
// (configs/samples/*.conf.sample, renamed) when SIPGUARD_ASTERISK_SAMPLES
// names a directory holding them: none may give a Problem. Not shipped
// here (GPL text); see docs/testing.md for how to run it.
func TestLoad_AsteriskSamples(t *testing.T) {
	dir := testutil.OptIn(t, "SIPGUARD_ASTERISK_SAMPLES", "a directory of Asterisk's sample configs")
	files, err := filepath.Glob(filepath.Join(dir, "*.conf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no *.conf in %s: %v", dir, err)
	}
	abs, _ := filepath.Abs(dir)
	l := &asteriskconf.Loader{FS: os.DirFS("/"), Dir: abs}
	vars, read := 0, 0
	for _, f := range files {
		switch filepath.Base(f) {
		case "ast_debug_tools.conf", "dbsep.conf":
			continue // shell syntax, read by scripts, not by Asterisk
		}
		c := load(t, l, filepath.Base(f))
		read++
		if p := problems(c); p != "" {
			t.Errorf("%s:\n%s", f, p)
		}
		for _, s := range c.Sections {
			vars += len(s.Vars)
		}
	}
	t.Logf("%d files, %d settings", read, vars)
}
