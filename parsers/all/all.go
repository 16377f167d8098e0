// Package all links every parser into the binary. Commands import it for
// its side effect; a new parser is added here.
package all

import (
	_ "github.com/sipguard/sipguard/parsers/asterisk" // asterisk
)
