// Package all links every parser into the binary. Commands import it for
// its side effect; a new parser is added here.
package all

import (
	_ "github.com/sipguard/sipguard/parsers/asterisk" // asterisk
	_ "github.com/sipguard/sipguard/parsers/freepbx"  // freepbx
	_ "github.com/sipguard/sipguard/parsers/kamailio" // kamailio
	_ "github.com/sipguard/sipguard/parsers/threecx"  // 3cx
	_ "github.com/sipguard/sipguard/parsers/yeastar"  // yeastar
)
