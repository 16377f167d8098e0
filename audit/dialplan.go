package audit

import (
	"strings"

	"github.com/sipguard/sipguard/asteriskconf"
)

// dialplan is extensions.conf as a graph of contexts: which context
// includes or jumps to which, and which lines dial out.
type dialplan struct {
	contexts map[string]*context
}

type context struct {
	name  string
	pos   asteriskconf.Pos
	exts  []extLine
	edges []edge
	// outbound is the first line of this context that dials an arbitrary
	// number out, if any.
	outbound *extLine
}

// extLine is one "exten =>" or "same =>" line.
type extLine struct {
	pattern, app, args string
	pos                asteriskconf.Pos
}

// edge is an include or a jump to another context.
type edge struct {
	to  string
	how string // "include", "Goto" ...
	pos asteriskconf.Pos
}

// outboundContexts are FreePBX's contexts that reach its outbound routes.
var outboundContexts = map[string]bool{
	"outbound-allroutes": true, "from-internal": true, "from-internal-noxfer": true, "from-internal-xfer": true,
	"from-internal-additional": true, "macro-dialout-trunk": true,
}

var (
	// jumpRe finds Goto/Gosub/Macro-style targets: App(context,exten,prio).
	jumpRe = lazyRegexp(`(?i)^(goto|gotoif|gotoiftime|gosub|gosubif|execif)$`)
	// localRe finds Local/exten@context in a Dial or Originate.
	localRe = lazyRegexp(`(?i)local/[^@,&)]*@([A-Za-z0-9_\-.]+)`)
	// trunkTech is a channel technology that leaves the PBX.
	trunkTech = lazyRegexp(`(?i)\b(sip|pjsip|iax2|dahdi|misdn|h323|ooh323|motif|unistim)/`)
)

// newDialplan reads the contexts of extensions.conf.
func newDialplan(c *asteriskconf.Config) *dialplan {
	dp := &dialplan{contexts: map[string]*context{}}
	for _, s := range c.Active() {
		if s.Name == "general" || s.Name == "globals" {
			continue
		}
		ctx := dp.contexts[s.Name]
		if ctx == nil {
			ctx = &context{name: s.Name, pos: s.Pos}
			dp.contexts[s.Name] = ctx
		}
		last := ""
		for _, v := range s.Vars {
			switch strings.ToLower(v.Name) {
			case "include":
				to, _, _ := strings.Cut(v.Value, ",")
				to, _, _ = strings.Cut(to, "|")
				ctx.edges = append(ctx.edges, edge{to: strings.TrimSpace(to), how: "include", pos: v.Pos})
			case "exten", "same":
				e, ok := parseExten(v, &last)
				if !ok {
					continue
				}
				ctx.exts = append(ctx.exts, e)
				ctx.edges = append(ctx.edges, jumps(e)...)
				if ctx.outbound == nil && dialsOut(e) {
					ext := e
					ctx.outbound = &ext
				}
			}
		}
	}
	return dp
}

// parseExten splits "pattern,priority,App(args)"; same lines take the
// pattern of the line before.
func parseExten(v asteriskconf.Var, last *string) (extLine, bool) {
	val := v.Value
	var pattern string
	if strings.EqualFold(v.Name, "same") {
		pattern = *last
	} else {
		p, rest, ok := strings.Cut(val, ",")
		if !ok {
			return extLine{}, false
		}
		pattern, val = strings.TrimSpace(p), rest
		*last = pattern
	}
	_, app, ok := strings.Cut(val, ",") // the priority
	if !ok {
		return extLine{}, false
	}
	app = strings.TrimSpace(app)
	name, args, _ := strings.Cut(app, "(")
	args = strings.TrimSuffix(strings.TrimSpace(args), ")")
	return extLine{pattern: pattern, app: strings.TrimSpace(name), args: args, pos: v.Pos}, true
}

// jumps lists the contexts a line can send a call to.
func jumps(e extLine) []edge {
	var out []edge
	if jumpRe().MatchString(e.app) {
		args := e.args
		// GotoIf(cond?ctx,ext,prio:ctx,ext,prio) and ExecIf: each branch.
		if _, after, ok := strings.Cut(args, "?"); ok {
			args = after
		}
		for _, branch := range strings.Split(args, ":") {
			parts := strings.Split(branch, ",")
			if len(parts) >= 3 {
				out = append(out, edge{to: strings.TrimSpace(strings.TrimPrefix(parts[0], "(")), how: e.app, pos: e.pos})
			}
		}
	}
	if strings.EqualFold(e.app, "macro") {
		name, _, _ := strings.Cut(e.args, ",")
		out = append(out, edge{to: "macro-" + strings.TrimSpace(name), how: "Macro", pos: e.pos})
	}
	for _, m := range localRe().FindAllStringSubmatch(e.args, -1) {
		out = append(out, edge{to: m[1], how: "Local channel", pos: e.pos})
	}
	return out
}

// dialsOut is true for a line that dials a number the caller chose out
// of the PBX: Dial or Originate of a trunk technology with ${EXTEN} under
// a pattern.
func dialsOut(e extLine) bool {
	app := strings.ToLower(e.app)
	if app != "dial" && app != "originate" && app != "queue" {
		return false
	}
	return strings.HasPrefix(e.pattern, "_") && strings.Contains(e.args, "${EXTEN") && trunkTech().MatchString(e.args)
}

// reach says whether context name reaches outbound dialling, and how: the
// chain of contexts and the line that dials out.
func (dp *dialplan) reach(name string) (chain []string, at asteriskconf.Pos, ok bool) {
	seen := map[string]bool{}
	var walk func(string, []string) ([]string, asteriskconf.Pos, bool)
	walk = func(n string, path []string) ([]string, asteriskconf.Pos, bool) {
		if seen[n] {
			return nil, asteriskconf.Pos{}, false
		}
		seen[n] = true
		path = append(path, n)
		ctx := dp.contexts[n]
		if outboundContexts[n] {
			var pos asteriskconf.Pos
			if ctx != nil {
				pos = ctx.pos
			}
			return path, pos, true
		}
		if ctx == nil {
			return nil, asteriskconf.Pos{}, false
		}
		if ctx.outbound != nil {
			return path, ctx.outbound.pos, true
		}
		for _, e := range ctx.edges {
			if p, pos, ok := walk(e.to, path); ok {
				return p, pos, true
			}
		}
		return nil, asteriskconf.Pos{}, false
	}
	return walk(name, nil)
}
