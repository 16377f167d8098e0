package testutil

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a testing.TB that records what a helper called instead of
// ending the test.
type recorder struct {
	testing.TB
	calls []string
}

func (r *recorder) Helper()          {}
func (r *recorder) Skip(args ...any) { r.calls = append(r.calls, "skip "+fmt.Sprint(args...)) }
func (r *recorder) Fatalf(format string, args ...any) {
	r.calls = append(r.calls, "fatal "+fmt.Sprintf(format, args...))
}

// TestMissing: a missing prerequisite skips, and fails with
// SIPGUARD_REQUIRE=all (test.sh's setting).
func TestMissing(t *testing.T) {
	for _, c := range []struct{ env, want string }{
		{"", "skip needs frob (apt-get install frob)"},
		{"some", "skip needs frob (apt-get install frob)"},
		{"all", "fatal needs frob (apt-get install frob) (SIPGUARD_REQUIRE=all: a missing prerequisite fails the test)"},
	} {
		t.Setenv(RequireEnv, c.env)
		r := &recorder{}
		NeedCommands(r, "apt-get install frob", "sh", "sipguard-no-such-command-frob")
		// The recorder does not stop at Fatalf as a test would: the first
		// call is what a test sees.
		if len(r.calls) == 0 || strings.Replace(r.calls[0], "sipguard-no-such-command-frob", "frob", 1) != c.want {
			t.Errorf("%s=%q: %q; want first %q", RequireEnv, c.env, r.calls, c.want)
		}
		r = &recorder{}
		NeedCommands(r, "", "sh")
		if len(r.calls) != 0 {
			t.Errorf("sh is on PATH, yet %q", r.calls)
		}
	}
}

// TestSkipsGoThroughHelpers: no test in the module calls Skip, Skipf or
// SkipNow itself, so every skip is either a missing prerequisite (which
// fails in CI) or a choice this package names (-short, a subprocess).
func TestSkipsGoThroughHelpers(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	here, _ := filepath.Abs(".")
	fset := token.NewFileSet()
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || filepath.Dir(path) == here {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		files++
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok {
				switch sel.Sel.Name {
				case "Skip", "Skipf", "SkipNow":
					t.Errorf("%s: %s called directly; use testutil.Missing, NeedRoot, NeedCommands, SkipShort, SubprocessOnly or OptIn",
						fset.Position(call.Pos()), sel.Sel.Name)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("read %d Go files under %s; the walk missed the tree", files, root)
	}
}
