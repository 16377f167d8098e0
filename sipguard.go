// Package sipguard holds what belongs to the repository as a whole: the
// shipped default configuration, built into every binary so that the
// documented rules.toml and the defaults cannot drift apart.
package sipguard

import _ "embed"

// DefaultRules is the content of rules.toml at the repository root.
//
//go:embed rules.toml
var DefaultRules []byte
