package main

import (
	"context"
	"fmt"

	"github.com/sipguard/sipguard/config"
	"github.com/sipguard/sipguard/watchers"
)

var checkCommand = command{"check", "validate a configuration file", (*Main).check}

const checkSynopsis = `check [-c FILE] [--strict]

Validates a configuration file: every key, value and [[parser]] pattern (on
its example lines). Errors name the file, line and key; the exit code is 1.

Then it opens each file source's log, as this process can (run it as the
daemon runs): a log that is missing, unreadable, a directory or not a
regular file is a warning on stderr, with its path and why; with --strict it
is an error. The daemon waits for a missing log and retries an unreadable
one; status shows such a source as not read.

It resolves each trunk's host names once, as the daemon does, and prints
what they answer; a name that does not resolve is a warning (the daemon
keeps trying).

[policy] mode = "strict" with no [allow] entry but loopback and no
[[trunk]] is an error (no provider could reach the SIP ports); a SIP port
that the SSH session this runs under ($SSH_CONNECTION) connects to, with
its client not allowlisted, is a warning: strict or responsive would cut
it off.`

func (m *Main) check(ctx context.Context, args []string) error {
	fs := m.flagSet("check", checkSynopsis)
	path := fs.String("c", "", "config `FILE` to check")
	strict := fs.Bool("strict", false, "fail when a source's log cannot be read")
	rest, err := m.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("check takes no arguments (use -c FILE)")
	}
	cfg, err := m.loadConfig(*path)
	if err != nil {
		return err
	}
	name := cfg.File
	if name == "" {
		name = "built-in config"
	}
	opts, err := cfg.EngineOptions(m.HostAddrs)
	if err != nil {
		return err
	}
	policyWarnings, err := policyProblems(cfg, opts.Allow, m.Getenv)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	fmt.Fprintf(m.Stdout, "%s: OK (%d %s, %d %s)\n", name,
		len(cfg.Sources), plural(len(cfg.Sources), "source"), len(cfg.Rules), plural(len(cfg.Rules), "rule"))
	// The trunks' addresses (and [allow]'s host names) count as allowed.
	resolved, warnings := checkTrunks(ctx, cfg, m.Stdout)
	for _, w := range append(m.lockoutWarnings(append(opts.Allow, resolved...)), warnings...) {
		fmt.Fprintf(m.Stderr, "warning: %s\n", w)
	}
	for _, w := range append(policyWarnings, wideAllow(cfg)...) {
		fmt.Fprintf(m.Stderr, "warning: %s\n", w)
	}
	unread := unreadable(cfg)
	for _, p := range unread {
		fmt.Fprintf(m.Stderr, "warning: %s\n", p)
	}
	if *strict && len(unread) > 0 {
		return fmt.Errorf("%d %s cannot be read (--strict)", len(unread), plural(len(unread), "log"))
	}
	return nil
}

// unreadable lists the file sources whose log this process cannot follow
// now: "source NAME: PATH: why".
func unreadable(cfg *config.Config) []string {
	var out []string
	for _, s := range cfg.Sources {
		if s.Type != "file" {
			continue
		}
		if err := watchers.Probe(s.Path); err != nil {
			out = append(out, fmt.Sprintf("source %s: %s: %s", s.Name, s.Path, watchers.Reason(err)))
		}
	}
	return out
}
