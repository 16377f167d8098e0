// Package firewall enforces ban decisions in the kernel. It owns:
//
//   - the Backend contract: put bans in force, lift them, list them,
//     restore them at start (Sync), and never drop the allowlist
//     (SetAllow);
//   - NFT, the nftables backend, and with it sipguard's own table in the
//     kernel (inet sipguard by default): its sets, chains and rules (the
//     contract is written on NFT), the transactions that write bans into
//     it, the read-back that verifies them, and Reconcile, which restores
//     what other processes change in the table. It never touches other
//     tables, and never waits on the kernel for good: every request has a
//     deadline (ErrNoAnswer);
//   - DryRun, a backend that only logs what it would do (and fwtest.Fake,
//     a map-backed backend for other packages' tests);
//   - what a ban is once enforced: its canonical prefix (Normalize), its
//     longest timeout (MaxTimeout), and the rule that network bans may not
//     overlap (ErrOverlap);
//   - the port syntax "5060/udp" (ParsePort), which the configuration uses,
//     and the ports profiles: a ban drops traffic to the default ports
//     (NFTOptions.Ports) or to those of its profile (Ban.Ports, a PortsKey
//     of NFTOptions.Profiles), such as a rule's own.
//
// It does not decide what to ban (package engine) nor keep the ledger of
// bans and its file (package bans); it imports no other sipguard package.
//
// NFT keeps the bans as set elements with per-element timeouts, so the
// kernel lifts each ban itself and bans hold while the daemon is stopped
// or restarting. The truth of what is banned lives in the backend's
// memory: reading the kernel back is slow (half a second or more for
// 100,000 elements) and is done only to verify.
package firewall

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// Ban asks for Prefix to be blocked for Timeout from now.
type Ban struct {
	// Prefix is a single address (/32, /128) or a network.
	Prefix  netip.Prefix
	Timeout time.Duration
	// Ports names the ports profile the ban drops traffic to (PortsKey of
	// a rule's own ports); "" is the default ports (NFTOptions.Ports).
	Ports string
}

// Entry is a ban in force.
type Entry struct {
	Prefix  netip.Prefix `json:"prefix"`
	Expires time.Time    `json:"expires"`
	// Ports is the ban's ports profile, as in Ban; "" the default.
	Ports string `json:"ports,omitempty"`
}

// Backend enforces bans. Implementations are safe for concurrent use.
type Backend interface {
	// Ban blocks each prefix for its timeout. Banning a prefix already
	// banned sets its new timeout (the kernel element is refreshed). Either
	// every ban is in force on return, or an error says none is.
	Ban(ctx context.Context, bans ...Ban) error
	// Change lifts each of lift in its ports profile and puts bans in
	// force, in one transaction: either all of it is done on return, or
	// an error says none is. A lift of a prefix not banned is ignored; a
	// ban may overlap a network lifted in the same call. So a wider
	// network taking the place of the narrower ones inside it (the kernel
	// holds no overlapping networks), or a ban shortened in one profile
	// and lifted in another, never leaves a moment, or a failure, with
	// neither in force.
	Change(ctx context.Context, lift []Lift, bans ...Ban) error
	// Unban lifts bans, in every ports profile. Prefixes not banned are
	// ignored.
	Unban(ctx context.Context, prefixes ...netip.Prefix) error
	// UnbanIn lifts bans in one ports profile only ("" the default),
	// leaving the same prefixes banned in other profiles.
	UnbanIn(ctx context.Context, ports string, prefixes ...netip.Prefix) error
	// List returns the bans in force, not yet expired.
	List(ctx context.Context) ([]Entry, error)
	// Sync makes the backend hold exactly entries (the expired ones are
	// skipped): it is used to restore the bans in force at start.
	Sync(ctx context.Context, entries []Entry) error
	// SetAllow replaces the allowlist: the addresses and networks whose
	// packets no ban drops, whatever bans cover them. Entries may overlap
	// (they are merged); an invalid one fails the call and changes
	// nothing.
	SetAllow(ctx context.Context, allow []netip.Prefix) error
	// State describes the backend for `sipguard status`.
	State(ctx context.Context) State
	// Close releases the backend's resources. Bans stay in force.
	Close() error
}

// Lift is a ban to lift in one ports profile ("" the default), as
// Backend.Change takes it.
type Lift struct {
	Prefix netip.Prefix
	Ports  string
}

// State describes a backend.
type State struct {
	Backend string   `json:"backend"`
	Table   string   `json:"table,omitempty"`
	Hooks   []string `json:"hooks,omitempty"`
	Bans    int      `json:"bans"`
	// Packets and Bytes dropped, read from the rule counters.
	Packets uint64 `json:"packets_dropped"`
	Bytes   uint64 `json:"bytes_dropped"`
	// Allowed counts the packets of allowlisted sources let through ahead
	// of the bans.
	Allowed uint64 `json:"packets_allowed"`
	// WireCopied counts the SIP responses the wire sensor's rules copied
	// to its NFLOG group (NFTOptions.Wire).
	WireCopied uint64 `json:"wire_packets_copied,omitempty"`
	// PolicyDropped counts the packets to the SIP ports that the policy
	// (strict, responsive) dropped; Packets excludes them.
	PolicyDropped uint64 `json:"packets_policy_dropped,omitempty"`
	// Restored counts the times the table, a chain, a rule, a set or its
	// elements were changed outside sipguard and restored.
	Restored  int       `json:"restored"`
	LastCheck time.Time `json:"last_check,omitzero"`
	LastError string    `json:"last_error,omitempty"`
}

// ErrOverlap is returned for a network ban that overlaps another network
// ban: kernel interval sets cannot hold overlapping ranges.
var ErrOverlap = errors.New("overlaps a network already banned")

// ErrUnknownPorts is returned for a ban whose ports profile the backend
// was not set up with (NFTOptions.Profiles).
var ErrUnknownPorts = errors.New("unknown ports profile")
