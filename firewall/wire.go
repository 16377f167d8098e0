package firewall

import (
	"fmt"
	"net/netip"
	"slices"
)

// Wire asks the nftables backend to copy the PBX's outgoing SIP responses
// to userspace through an NFLOG group (the wire sensor's capture, package
// wirecap). The rules only log: they give no verdict, so whether sipguard
// reads the group or not, every packet goes on as before (fail open).
type Wire struct {
	// Hooks: "output" for a PBX on this host, "forward" for a PBX behind
	// this router; one or both.
	Hooks []string
	// PBX are the addresses (or networks) whose responses the forward
	// hook copies: a router forwards everybody's SIP. Required with
	// "forward"; the output hook copies this host's responses only.
	PBX []netip.Prefix
	// Ports are the PBX's SIP ports: the source port of its responses.
	Ports []Port
	// Group is the NFLOG group (nft `log group`), 0-65535.
	Group uint16
	// Snaplen is how many bytes of each packet, from the IP header on,
	// are copied (nft `log snaplen`); 0 is DefaultWireSnaplen.
	Snaplen uint32
}

// DefaultWireSnaplen is Wire.Snaplen's default: a SIP response's Call-ID
// and CSeq often lie past byte 256, and a 401 or 404 is 400-600 bytes; a
// 200 to a REGISTER with many contacts can pass 1,500.
const DefaultWireSnaplen = 4096

// wireHooks are the hooks a Wire may name.
var wireHooks = []string{"output", "forward"}

// check reports what is wrong with w, as NewNFT refuses it.
func (w *Wire) check() error {
	if len(w.Hooks) == 0 {
		return fmt.Errorf("wire: no hook: want output, forward or both")
	}
	for _, h := range w.Hooks {
		if !slices.Contains(wireHooks, h) {
			return fmt.Errorf("wire: hook %q: want output or forward", h)
		}
	}
	if slices.Contains(w.Hooks, "forward") && len(w.PBX) == 0 {
		return fmt.Errorf("wire: the forward hook needs the PBX addresses whose responses it reads")
	}
	for _, p := range w.PBX {
		if !p.IsValid() {
			return fmt.Errorf("wire: invalid PBX address %v", p)
		}
	}
	if len(w.Ports) == 0 {
		return fmt.Errorf("wire: no port: want the PBX's SIP ports (5060/udp)")
	}
	if _, err := portRanges(w.Ports); err != nil {
		return fmt.Errorf("wire: %w", err)
	}
	if w.Snaplen != 0 && w.Snaplen < 1024 {
		return fmt.Errorf("wire: snaplen %d is under 1024: Call-ID and CSeq would be cut off", w.Snaplen)
	}
	return nil
}
