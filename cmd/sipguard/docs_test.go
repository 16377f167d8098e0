package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sipguard/sipguard/internal/testutil"
)

// TestBashCompletion runs the generated script in bash.
func TestBashCompletion(t *testing.T) {
	testutil.NeedCommands(t, "apt-get install bash", "bash")
	script, errOut, code := run(t, "", "completion", "bash")
	if code != 0 {
		t.Fatalf("%d %s", code, errOut)
	}
	path := filepath.Join(t.TempDir(), "sipguard.bash")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		words string
		want  []string
	}{
		{"sipguard sc", []string{"scan"}},
		{"sipguard im", []string{"import"}},
		{"sipguard scan --pa", []string{"--parser"}},
		{"sipguard scan --parser free", []string{"freepbx"}},
		{"sipguard import --format fa", []string{"fail2ban"}},
		{"sipguard run --dr", []string{"--dry-run"}},
		{"sipguard completion z", []string{"zsh"}},
		{"sipguard list --", []string{"--json"}},
		{"sipguard audit --fail-on cr", []string{"critical"}},
		{"sipguard au", []string{"audit"}},
	} {
		cmd := exec.Command("bash", "-c", `source "$1"; COMP_WORDS=($2); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); _sipguard; printf '%s\n' "${COMPREPLY[@]}"`, "bash", path, c.words)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v %s", c.words, err, out)
		}
		got := strings.Fields(string(out))
		for _, w := range c.want {
			if !slices.Contains(got, w) {
				t.Errorf("%q: got %q; want %q among them", c.words, got, w)
			}
		}
		if len(got) > 3*len(c.want)+3 {
			t.Errorf("%q: %d completions: %q", c.words, len(got), got)
		}
	}
}

// TestZshCompletion checks the zsh script's syntax, when zsh is there
// (test.sh installs it).
func TestZshCompletion(t *testing.T) {
	script, _, code := run(t, "", "completion", "zsh")
	if code != 0 || !strings.HasPrefix(script, "#compdef sipguard\n") {
		t.Fatalf("%d %q", code, script[:min(len(script), 40)])
	}
	for _, c := range commands {
		if !strings.Contains(script, "\t"+c.name+")\n") {
			t.Errorf("no case for %s", c.name)
		}
	}
	testutil.NeedCommands(t, "apt-get install zsh; .ci/run does", "zsh")
	path := filepath.Join(t.TempDir(), "_sipguard")
	os.WriteFile(path, []byte(script), 0o644)
	if out, err := exec.Command("zsh", "-n", path).CombinedOutput(); err != nil {
		t.Errorf("zsh -n: %v %s", err, out)
	}
}

// TestFishCompletion runs the generated script in fish (test.sh installs
// it) and asks it for completions.
func TestFishCompletion(t *testing.T) {
	script, _, code := run(t, "", "completion", "fish")
	if code != 0 || !strings.HasPrefix(script, "# fish completion for sipguard") {
		t.Fatalf("%d %q", code, script[:min(len(script), 40)])
	}
	testutil.NeedCommands(t, "apt-get install fish; .ci/run does", "fish")
	path := filepath.Join(t.TempDir(), "sipguard.fish")
	os.WriteFile(path, []byte(script), 0o644)
	for _, c := range []struct {
		line string
		want []string
	}{
		{"sipguard sc", []string{"scan"}},
		{"sipguard scan --pa", []string{"--parser"}},
		{"sipguard scan --parser free", []string{"freepbx"}},
		{"sipguard import --format fa", []string{"fail2ban"}},
		{"sipguard completion f", []string{"fish"}},
		{"sipguard help st", []string{"status"}},
		{"sipguard list --", []string{"--json"}},
	} {
		out, err := exec.Command("fish", "--no-config", "-c", "source $argv[1]; complete -C $argv[2]", path, c.line).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v %s", c.line, err, out)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			word, _, _ := strings.Cut(l, "\t")
			got = append(got, word)
		}
		for _, w := range c.want {
			if !slices.Contains(got, w) {
				t.Errorf("%q: got %q; want %q among them", c.line, got, w)
			}
		}
	}
}

// TestManPage: every command and flag is in the page, which groff reads
// without a warning.
func TestManPage(t *testing.T) {
	page, errOut, code := run(t, "", "man")
	if code != 0 {
		t.Fatalf("%d %s", code, errOut)
	}
	for _, c := range commands {
		if !strings.Contains(page, ".SS "+c.name+"\n") {
			t.Errorf("no section for %s", c.name)
		}
	}
	for _, want := range []string{`\fB\-\-dry\-run\fR`, `\fB\-\-format\fR \fIFORMAT\fR`, `\fB\-c\fR \fIFILE\fR`, ".SH EXIT STATUS"} {
		if !strings.Contains(page, want) {
			t.Errorf("missing %q", want)
		}
	}
	testutil.NeedCommands(t, "apt-get install groff-base; .ci/run does", "groff")
	cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = strings.NewReader(page)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("groff: %v\n%s", err, out)
	}
}
