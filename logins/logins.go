// Package logins remembers where each account logged in from: the
// addresses (the first and last login from each) and, with a country
// database, the countries (the first login from each). The toll-fraud
// rules (package fraud) ask it whether an account's last login is new;
// [compromise] on_new_country whether a login comes from a country the
// account never used.
//
// It is bounded (accounts, and addresses and countries per account) and
// the daemon saves it in its state directory (Save, Load), so that a
// restart does not make every account's addresses new again. Only
// successful logins reach it: an attacker adds an account only with its
// password.
package logins

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/sipguard/sipguard/store"
)

// Bounds.
const (
	DefaultMaxAccounts = 10000 // accounts remembered, the least recently used forgotten
	// MaxAddrs bounds the addresses kept per account. When full, the one
	// first seen most recently is forgotten, never a long-known one: an
	// attacker who holds the password and logs in from many addresses
	// would otherwise push the office's address out, and with it what
	// makes its own addresses new (fraud's new_address rule, and the
	// address a fraud alert bans).
	MaxAddrs       = 64
	MaxCountries   = 64  // countries per account, likewise
	maxAccountName = 256 // bytes of an account's name kept from a file
)

// Seen is when an account first and last logged in from an address.
type Seen struct {
	First, Last time.Time
}

// Account is what is known of one account's logins.
type Account struct {
	Addrs       map[netip.Addr]Seen
	Countries   map[string]time.Time // the first login from each
	Last        netip.Addr           // the last login's address
	LastCountry string               // and its country ("" when unknown)
	used        uint64
}

// History is the logins of every account. It is not safe for concurrent
// use.
type History struct {
	max      int
	accounts map[string]*Account
	seq      uint64
	changed  bool
}

// New returns an empty history of at most maxAccounts accounts (0:
// DefaultMaxAccounts).
func New(maxAccounts int) *History {
	if maxAccounts <= 0 {
		maxAccounts = DefaultMaxAccounts
	}
	return &History{max: maxAccounts, accounts: map[string]*Account{}}
}

// Login records a login of acct from addr, whose country is country (""
// without a country database or when it does not know addr). It reports
// whether the country is new: one the account never logged in from,
// while it had logged in from another country before (an account's first
// country is where it lives, not news).
func (h *History) Login(acct string, addr netip.Addr, country string, t time.Time) (newCountry bool) {
	a := h.account(acct)
	addr = addr.Unmap()
	s, known := a.Addrs[addr]
	if !known {
		if len(a.Addrs) >= MaxAddrs {
			delete(a.Addrs, newest(a.Addrs, func(s Seen) time.Time { return s.First }))
		}
		s.First = t
	}
	s.Last = t
	a.Addrs[addr] = s
	a.Last, a.LastCountry = addr, country
	if country != "" {
		if _, ok := a.Countries[country]; !ok {
			newCountry = len(a.Countries) > 0
			if len(a.Countries) >= MaxCountries {
				delete(a.Countries, newest(a.Countries, func(t time.Time) time.Time { return t }))
			}
			a.Countries[country] = t
		}
	}
	h.changed = true
	return newCountry
}

// Account returns what is known of acct's logins, nil when nothing. The
// caller must not change it.
func (h *History) Account(acct string) *Account {
	return h.accounts[acct]
}

// Len returns the number of accounts remembered.
func (h *History) Len() int { return len(h.accounts) }

// Changed reports whether a login was recorded since the last Save.
func (h *History) Changed() bool { return h.changed }

// account returns acct's entry, made when missing, forgetting the least
// recently used account when full.
func (h *History) account(acct string) *Account {
	h.seq++
	a := h.accounts[acct]
	if a == nil {
		if len(h.accounts) >= h.max {
			var lru string
			var used uint64 = 1<<64 - 1
			for k, v := range h.accounts {
				if v.used < used {
					lru, used = k, v.used
				}
			}
			delete(h.accounts, lru)
		}
		a = &Account{Addrs: map[netip.Addr]Seen{}, Countries: map[string]time.Time{}}
		h.accounts[acct] = a
	}
	a.used = h.seq
	return a
}

// newest returns the key of m whose time is latest.
func newest[K comparable, V any](m map[K]V, at func(V) time.Time) K {
	var out K
	var last time.Time
	for k, v := range m {
		if t := at(v); last.IsZero() || t.After(last) {
			out, last = k, t
		}
	}
	return out
}

// The file: accounts from the most recently used.
type file struct {
	Version  int           `json:"version"`
	Accounts []fileAccount `json:"accounts"`
}

type fileAccount struct {
	Account     string               `json:"account"`
	Addrs       []fileAddr           `json:"addrs"`
	Countries   map[string]time.Time `json:"countries,omitempty"`
	Last        netip.Addr           `json:"last,omitzero"`
	LastCountry string               `json:"last_country,omitempty"`
}

type fileAddr struct {
	Addr  netip.Addr `json:"addr"`
	First time.Time  `json:"first"`
	Last  time.Time  `json:"last"`
}

const fileVersion = 1

// Save writes the history to path, atomically (package store).
func (h *History) Save(path string) error {
	f := file{Version: fileVersion}
	names := make([]string, 0, len(h.accounts))
	for n := range h.accounts {
		names = append(names, n)
	}
	slices.SortFunc(names, func(x, y string) int { return cmp.Compare(h.accounts[y].used, h.accounts[x].used) })
	for _, n := range names {
		a := h.accounts[n]
		fa := fileAccount{Account: n, Countries: a.Countries, Last: a.Last, LastCountry: a.LastCountry}
		for addr, s := range a.Addrs {
			fa.Addrs = append(fa.Addrs, fileAddr{addr, s.First, s.Last})
		}
		slices.SortFunc(fa.Addrs, func(x, y fileAddr) int { return x.Addr.Compare(y.Addr) })
		f.Accounts = append(f.Accounts, fa)
	}
	if err := store.Save(path, f); err != nil {
		return err
	}
	h.changed = false
	return nil
}

// Load reads a history saved at path into a history of at most
// maxAccounts accounts. A missing file is an empty history. Whatever the
// file holds, the bounds hold: accounts past maxAccounts, addresses and
// countries past their limits, invalid addresses, countries that are not
// two capital letters and overlong account names are left out (skipped
// reports how many entries).
func Load(path string, maxAccounts int) (h *History, skipped int, err error) {
	h = New(maxAccounts)
	var f file
	found, err := store.Load(path, &f)
	if err != nil || !found {
		return h, 0, err
	}
	if f.Version != fileVersion {
		return h, 0, fmt.Errorf("load %s: version %d, not %d", path, f.Version, fileVersion)
	}
	// The file lists the most recently used first: give them the highest
	// sequence numbers.
	h.seq = uint64(len(f.Accounts))
	for i, fa := range f.Accounts {
		if len(h.accounts) >= h.max || fa.Account == "" || len(fa.Account) > maxAccountName || h.accounts[fa.Account] != nil {
			skipped++
			continue
		}
		a := &Account{Addrs: map[netip.Addr]Seen{}, Countries: map[string]time.Time{}, used: h.seq - uint64(i)}
		for _, x := range fa.Addrs {
			if !x.Addr.IsValid() || x.Addr.Zone() != "" || len(a.Addrs) >= MaxAddrs {
				skipped++
				continue
			}
			a.Addrs[x.Addr.Unmap()] = Seen{x.First, x.Last}
		}
		for c, t := range fa.Countries {
			if !isISO(c) || len(a.Countries) >= MaxCountries {
				skipped++
				continue
			}
			a.Countries[c] = t
		}
		if _, ok := a.Addrs[fa.Last]; ok {
			a.Last = fa.Last
		}
		if _, ok := a.Countries[fa.LastCountry]; ok {
			a.LastCountry = fa.LastCountry
		}
		h.accounts[fa.Account] = a
	}
	return h, skipped, nil
}

// isISO reports whether s is a country code: two capital letters.
func isISO(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}
