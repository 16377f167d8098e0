package main

import (
	"context"
	"fmt"
	"time"
)

var exportCommand = command{"export", "write the bans in force (a list, or JSON)", (*Main).export}

const exportSynopsis = `export [-c FILE] [--json] [--rule NAME]

Writes the bans in force to standard output: one address or network per
line with its rule and expiry as a comment (a list "sipguard import" and
[[feed]] read), or with --json the list as "sipguard list --json" prints
it, which import reads back with each ban's remaining time and reason.`

func (m *Main) export(ctx context.Context, args []string) error {
	fs := m.flagSet("export", exportSynopsis)
	client := m.daemonFlag(fs)
	asJSON := fs.Bool("json", false, "write JSON")
	rule := fs.String("rule", "", "only the bans of rule `NAME` (\"manual\", \"feed:NAME\", ...)")
	if err := m.parseNoArgs(fs, args); err != nil {
		return err
	}
	c, err := client()
	if err != nil {
		return err
	}
	bans, err := c.List(ctx)
	if err != nil {
		return err
	}
	if *rule != "" {
		kept := bans[:0]
		for _, b := range bans {
			if b.Rule == *rule {
				kept = append(kept, b)
			}
		}
		bans = kept
	}
	if *asJSON {
		return printJSON(m.Stdout, bans)
	}
	fmt.Fprintf(m.Stdout, "# sipguard export, %s: %d bans\n", m.Now().UTC().Format(time.RFC3339), len(bans))
	for _, b := range bans {
		fmt.Fprintf(m.Stdout, "%s # %s until %s\n", b.Target, b.Rule, b.Expires.UTC().Format(time.RFC3339))
	}
	return nil
}
