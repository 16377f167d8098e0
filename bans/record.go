package bans

import (
	"net/netip"
	"strings"
	"time"
)

// Kind says what decided a ban.
type Kind uint8

// Kinds of origin.
const (
	// Rule: a rule of this node's engine (the compromise rule included);
	// Record.Rule names it.
	Rule Kind = iota + 1
	// Manual: `sipguard ban` or `sipguard import`.
	Manual
	// Feed: a blocklist feed; Origin.Name names it.
	Feed
	// Adopted: found in the kernel at start but not in the saved state
	// (the daemon stopped before saving it).
	Adopted
	// Peer: another node of the cluster; Origin.Name names the node and
	// Record.Rule the rule that decided it there.
	Peer
)

// Origin is what decided a ban, and so what may change or lift it: a
// peer's message changes only that peer's bans, a feed's new list only
// that feed's entries.
type Origin struct {
	Kind Kind
	Name string // Feed: the feed; Peer: the node; empty otherwise
}

// Origins without a name.
var (
	ByRule   = Origin{Kind: Rule}
	ByHand   = Origin{Kind: Manual}
	ByKernel = Origin{Kind: Adopted}
)

// feedLabel starts the label of a feed's entries: "feed:NAME".
const feedLabel = "feed:"

// Reserved reports whether a rule may not be called name: the labels of
// bans that no rule decided.
func Reserved(name string) bool {
	return name == "manual" || name == "adopted" || strings.HasPrefix(name, feedLabel)
}

// FromFeed is the origin of a feed's entries.
func FromFeed(name string) Origin { return Origin{Kind: Feed, Name: name} }

// FromPeer is the origin of another node's bans.
func FromPeer(node string) Origin { return Origin{Kind: Peer, Name: node} }

// Local reports whether this node decided the ban itself, by a rule or by
// hand: the bans it shares with the cluster. Feed entries and adopted bans
// are not decisions; peers' bans are theirs to share.
func (o Origin) Local() bool { return o.Kind == Rule || o.Kind == Manual }

// Record is a ban in force. A record is never changed once in a Ledger: a
// new ban of the same target (a renewal too) replaces it, so a snapshot
// of records can be written by another goroutine while the ledger goes on.
type Record struct {
	Target netip.Prefix
	Origin Origin
	// Rule is the rule that decided the ban, for Origin Rule and Peer.
	Rule    string
	Addr    netip.Addr // the address whose event triggered it, if any
	Reason  string
	Since   time.Time
	Expires time.Time
	Count   int // events that triggered the rule
	// Offences is the number of earlier bans of the address when this one
	// was decided (escalation).
	Offences int
	Source   string // the log source of the events
	// Ports names the ports the ban drops traffic to: its firewall ports
	// profile (firewall.PortsKey of a rule's own ports), "" for the
	// default ([firewall] ports). A target may hold records of several
	// profiles; each origin holds at most one record per profile.
	Ports string
}

// Label is what `list`, the bans file and the metrics call the rule of a
// ban: the rule's name, "manual", "feed:NAME" or "adopted".
func (r *Record) Label() string {
	switch r.Origin.Kind {
	case Manual:
		return "manual"
	case Feed:
		return feedLabel + r.Origin.Name
	case Adopted:
		return "adopted"
	default:
		return r.Rule
	}
}

// Node is the peer that decided the ban, or "" for this node's own.
func (r *Record) Node() string {
	if r.Origin.Kind == Peer {
		return r.Origin.Name
	}
	return ""
}

// InForce reports whether the ban has not ended at now.
func (r *Record) InForce(now time.Time) bool { return r.Expires.After(now) }

// originOf reads back what Label and Node wrote.
func originOf(label, node string) (Origin, string) {
	switch {
	case node != "":
		return FromPeer(node), label
	case label == "manual":
		return ByHand, ""
	case label == "adopted":
		return ByKernel, ""
	case strings.HasPrefix(label, feedLabel):
		return FromFeed(strings.TrimPrefix(label, feedLabel)), ""
	default:
		return ByRule, label
	}
}

// Lift is an unban remembered: other nodes' bans of its target made at or
// before At are not enforced again until Until (they were lifted here, by
// a cluster unban or a plain one, and may still be in the cluster's stream).
type Lift struct {
	At, Until time.Time
	Origin    string // the node whose cluster unban it is; "": this node's
}
