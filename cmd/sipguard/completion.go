package main

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"strings"

	"github.com/sipguard/sipguard/audit"
	"github.com/sipguard/sipguard/parsers"
)

// flagNames lists a command's flags as typed: "-c", "--json".
func flagNames(fs *flag.FlagSet) []string {
	var out []string
	fs.VisitAll(func(f *flag.Flag) { out = append(out, flagName(f.Name)) })
	return out
}

var completionCommand = command{"completion", "print a shell completion script (bash, zsh, fish)", (*Main).completion}

const completionSynopsis = `completion bash|zsh|fish

Prints a completion script. bash: put it in
/usr/share/bash-completion/completions/sipguard (or source it from
~/.bashrc); zsh: save it as _sipguard in a directory of $fpath; fish: save
it as ~/.config/fish/completions/sipguard.fish (or in
/usr/share/fish/vendor_completions.d).`

func (m *Main) completion(_ context.Context, args []string) error {
	fs := m.flagSet("completion", completionSynopsis)
	shell, err := m.parseOneArg(fs, args, "completion takes the shell: bash, zsh or fish")
	if err != nil {
		return err
	}
	switch shell {
	case "bash":
		fmt.Fprint(m.Stdout, m.bashCompletion())
	case "zsh":
		fmt.Fprint(m.Stdout, m.zshCompletion())
	case "fish":
		fmt.Fprint(m.Stdout, m.fishCompletion())
	default:
		return usagef("completion: %q is not bash, zsh or fish", shell)
	}
	return nil
}

// flagValues are the words some flags take.
func flagValues() map[string]string {
	return map[string]string{
		"--parser":       strings.Join(parsers.Names(), " "),
		"--format":       "auto plain json fail2ban",
		"--min-severity": strings.Join(audit.SeverityNames(), " "),
		"--fail-on":      strings.Join(audit.SeverityNames(), " "),
	}
}

func (m *Main) bashCompletion() string {
	names := commandNames()
	var b strings.Builder
	fmt.Fprintf(&b, `# bash completion for sipguard (sipguard completion bash)
_sipguard() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	if [[ $COMP_CWORD -eq 1 ]]; then
		COMPREPLY=($(compgen -W %q -- "$cur"))
		return
	fi
	case $prev in
	-c) COMPREPLY=($(compgen -f -- "$cur")); return ;;
`, strings.Join(append(names, "help"), " "))
	vals := flagValues()
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "\t%s) COMPREPLY=($(compgen -W %q -- \"$cur\")); return ;;\n", k, vals[k])
	}
	b.WriteString("\t--for) return ;;\n\t--reason) return ;;\n\t--rule) return ;;\n\tesac\n\tlocal opts\n\tcase ${COMP_WORDS[1]} in\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "\t%s) opts=%q ;;\n", c.name, strings.Join(flagNames(m.describe(c.name).flags), " "))
	}
	b.WriteString(`	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	elif [[ ${COMP_WORDS[1]} == unban ]]; then
		COMPREPLY=($(compgen -W "$(sipguard export 2>/dev/null | sed -n 's/^\([^# ]*\) .*/\1/p')" -- "$cur"))
	elif [[ ${COMP_WORDS[1]} == completion ]]; then
		COMPREPLY=($(compgen -W "bash zsh fish" -- "$cur"))
	else
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
}
complete -F _sipguard sipguard
`)
	return b.String()
}

func (m *Main) zshCompletion() string {
	var b strings.Builder
	b.WriteString("#compdef sipguard\n# zsh completion for sipguard (sipguard completion zsh)\n\n_sipguard() {\n\tlocal -a cmds\n\tcmds=(\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "\t\t%s\n", zshQuote(c.name+":"+c.summary))
	}
	b.WriteString("\t)\n\tif (( CURRENT == 2 )); then\n\t\t_describe 'command' cmds\n\t\treturn\n\tfi\n\tcase $words[2] in\n")
	vals := flagValues()
	for _, c := range commands {
		d := m.describe(c.name)
		var specs []string
		d.flags.VisitAll(func(f *flag.Flag) {
			name := "--" + f.Name
			if len(f.Name) == 1 {
				name = "-" + f.Name
			}
			arg := ""
			if !isBoolFlag(f) {
				switch {
				case vals[name] != "":
					arg = ":" + f.Name + ":(" + vals[name] + ")"
				case f.Name == "c":
					arg = ":config file:_files"
				default:
					arg = ":" + f.Name + ":"
				}
			}
			specs = append(specs, zshQuote(name+"["+zshEscape(firstLine(f.Usage))+"]"+arg))
		})
		specs = append(specs, "'*:file:_files'")
		fmt.Fprintf(&b, "\t%s)\n\t\t_arguments %s\n\t\t;;\n", c.name, strings.Join(specs, " \\\n\t\t\t"))
	}
	b.WriteString("\tesac\n}\n\n_sipguard \"$@\"\n")
	return b.String()
}

func (m *Main) fishCompletion() string {
	var b strings.Builder
	b.WriteString("# fish completion for sipguard (sipguard completion fish)\ncomplete -c sipguard -f\n")
	for _, c := range append(commands, command{name: "help", summary: "show the commands, or a command's flags"}) {
		fmt.Fprintf(&b, "complete -c sipguard -n __fish_use_subcommand -a %s -d %s\n", fishQuote(c.name), fishQuote(c.summary))
	}
	vals := flagValues()
	for _, c := range commands {
		when := fishQuote("__fish_seen_subcommand_from " + c.name)
		m.describe(c.name).flags.VisitAll(func(f *flag.Flag) {
			opt := "-l " + f.Name
			if len(f.Name) == 1 {
				opt = "-s " + f.Name
			}
			arg := ""
			switch {
			case isBoolFlag(f):
			case vals[flagName(f.Name)] != "":
				arg = " -x -a " + fishQuote(vals[flagName(f.Name)])
			case f.Name == "c":
				arg = " -r -F"
			default:
				arg = " -x"
			}
			fmt.Fprintf(&b, "complete -c sipguard -n %s %s%s -d %s\n", when, opt, arg, fishQuote(firstLine(f.Usage)))
		})
	}
	b.WriteString(`complete -c sipguard -n '__fish_seen_subcommand_from scan import check' -F
complete -c sipguard -n '__fish_seen_subcommand_from unban' -a '(sipguard export 2>/dev/null | string match -r "^[^# ]+")'
complete -c sipguard -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'
complete -c sipguard -n '__fish_seen_subcommand_from help' -a '` + strings.Join(commandNames(), " ") + `'
`)
	return b.String()
}

// fishQuote quotes s in single quotes for fish.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}

// commandNames lists the commands, in help's order.
func commandNames() []string {
	names := make([]string, len(commands))
	for i, c := range commands {
		names[i] = c.name
	}
	return names
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.ReplaceAll(strings.ReplaceAll(s, "`", ""), "\"", "")
}

// zshQuote quotes s in single quotes for zsh.
func zshQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// zshEscape escapes the characters _arguments gives a meaning in a
// description.
func zshEscape(s string) string {
	return strings.NewReplacer("[", `\[`, "]", `\]`, ":", `\:`).Replace(s)
}
