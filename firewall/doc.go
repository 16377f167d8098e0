// Package firewall will enforce bans in the kernel: a small Backend
// interface with an nftables implementation (table inet sipguard, sets with
// per-element timeouts, so bans hold while the daemon is down) and a
// dry-run one. It arrives with the daemon (`sipguard run`); until then
// sipguard only decides bans offline (`sipguard scan`).
package firewall
