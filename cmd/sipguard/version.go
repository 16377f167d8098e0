package main

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version string

// Version returns the version of this binary: the one set at build time,
// else the module version, else "devel" with the VCS revision when known.
func Version() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	v := "devel"
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}

var versionCommand = command{"version", "print the version", (*Main).version}

const versionSynopsis = `version

Prints the version.`

func (m *Main) version(_ context.Context, args []string) error {
	fs := m.flagSet("version", versionSynopsis)
	if err := m.parseNoArgs(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "sipguard %s\n", strings.TrimSpace(Version()))
	return nil
}
