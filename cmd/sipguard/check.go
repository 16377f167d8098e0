package main

import (
	"context"
	"fmt"
)

var checkCommand = command{"check", "validate a configuration file", (*Main).check}

const checkSynopsis = `check [-c FILE]

Validates a configuration file: every key, value and [[parser]] pattern (on
its example lines). Errors name the file, line and key; the exit code is 1.`

func (m *Main) check(_ context.Context, args []string) error {
	fs := m.flagSet("check", checkSynopsis)
	path := fs.String("c", "", "config `FILE` to check")
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
	fmt.Fprintf(m.Stdout, "%s: OK (%d %s, %d %s)\n", name,
		len(cfg.Sources), plural(len(cfg.Sources), "source"), len(cfg.Rules), plural(len(cfg.Rules), "rule"))
	opts, err := cfg.EngineOptions(m.HostAddrs)
	if err != nil {
		return err
	}
	for _, w := range m.lockoutWarnings(opts.Allow) {
		fmt.Fprintf(m.Stderr, "warning: %s\n", w)
	}
	return nil
}
