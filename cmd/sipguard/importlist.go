package main

// The lists sipguard import reads.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/sipguard/sipguard/bans"
	"github.com/sipguard/sipguard/control"
	"github.com/sipguard/sipguard/feeds"
)

// readImport reads a list of bans in format (see importSynopsis).
func readImport(data []byte, format string, now time.Time) ([]control.BanRequest, error) {
	trimmed := bytes.TrimSpace(data)
	if format == "auto" {
		switch {
		case len(trimmed) > 0 && trimmed[0] == '[' && json.Valid(trimmed):
			format = "json"
		case bytes.Contains(trimmed, []byte("{'")) || bytes.Contains(trimmed, []byte("['")):
			format = "fail2ban"
		default:
			format = "plain"
		}
	}
	switch format {
	case "json":
		var bans []control.Ban
		if err := json.Unmarshal(trimmed, &bans); err != nil {
			return nil, fmt.Errorf("not a sipguard JSON ban list: %w", err)
		}
		var out []control.BanRequest
		for _, b := range bans {
			left := b.Expires.Sub(now).Round(time.Second)
			if left < time.Second {
				continue // over already
			}
			reason := b.Reason
			if b.Rule != "" && b.Rule != "manual" {
				reason = strings.TrimSpace(b.Rule + ": " + reason)
			}
			out = append(out, control.BanRequest{Target: b.Target, For: fmt.Sprintf("%ds", int64(left.Seconds())), Reason: reason})
		}
		return out, nil
	case "plain":
		list, err := feeds.Parse(bytes.NewReader(data), control.MaxImport)
		if err != nil {
			return nil, err
		}
		if list.Invalid > 0 || list.TooWide > 0 {
			return nil, fmt.Errorf("%d lines are not addresses or networks (the first: %s), %d networks are too wide (the first: %s)",
				list.Invalid, dash(list.FirstInvalid), list.TooWide, dash(list.FirstTooWide))
		}
		if list.Special > 0 {
			return nil, fmt.Errorf("%d entries are special-purpose addresses, never banned (loopback, link-local, multicast, ...; the first: %s)",
				list.Special, list.FirstSpecial)
		}
		return targets(list.Prefixes), nil
	case "fail2ban":
		return readFail2ban(trimmed)
	default:
		return nil, usagef("--format %q is not auto, plain, json or fail2ban", format)
	}
}

// readFail2ban reads what fail2ban-client prints: the Python repr of
// "banned" ([{'asterisk': ['192.0.2.1']}, {'sshd': []}]), whose quoted
// strings are jail names and addresses, or "get JAIL banip", addresses
// separated by spaces.
func readFail2ban(data []byte) ([]control.BanRequest, error) {
	var out []netip.Prefix
	if bytes.ContainsAny(data, `'"`) {
		for s := string(data); ; {
			i := strings.IndexAny(s, `'"`)
			if i < 0 {
				break
			}
			j := strings.IndexByte(s[i+1:], s[i])
			if j < 0 {
				return nil, fmt.Errorf("unterminated quote in fail2ban output")
			}
			tok := s[i+1 : i+1+j]
			s = s[i+2+j:]
			if p, ok := fail2banTarget(tok); ok {
				out = append(out, p)
			} // otherwise a jail name
		}
	} else {
		for _, tok := range strings.FieldsFunc(string(data), func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == ',' }) {
			p, ok := fail2banTarget(tok)
			if !ok {
				return nil, fmt.Errorf("%q is not an address", tok)
			}
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no address in the fail2ban output")
	}
	return targets(out), nil
}

// fail2banTarget reads an address or network of fail2ban's output, which
// masks nothing: a network with host bits set is taken masked.
func fail2banTarget(s string) (netip.Prefix, bool) {
	p, err := bans.ParseTarget(s)
	var hostBits *bans.HostBitsError
	if errors.As(err, &hostBits) {
		return hostBits.Masked, true
	}
	return p, err == nil
}

func targets(ps []netip.Prefix) []control.BanRequest {
	out := make([]control.BanRequest, 0, len(ps))
	for _, p := range ps {
		out = append(out, control.BanRequest{Target: bans.String(p)})
	}
	return out
}
