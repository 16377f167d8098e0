// Package bans is the ledger of the bans in force: what is banned, why,
// by whom and until when, and the rules that keep it coherent (a ban
// inside a wider one is not needed, a wider one replaces the narrower
// ones inside it, an ended one is forgotten). It also reads the targets
// people and lists name (ParseTarget), owns the rule of what no ban may
// ever cover, whoever asks (Special: loopback, link-local, multicast and
// the like), says what a ban keeps of a reason (CleanReason: short,
// printable), and reads and writes the bans file (a damaged line costs
// only itself).
//
// It is a value with no I/O and no goroutines: the daemon owns one, asks
// it what to enforce and lift in the firewall, and tells it what was done.
package bans
