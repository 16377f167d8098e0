// Package feeds loads blocklist feeds: lists of addresses and networks, in
// a local file or at an HTTP(S) URL, reloaded on an interval. It reads and
// checks them; the daemon enforces each feed's list in nftables interval
// sets.
//
// A feed's list replaces everything that feed banned before. So a broken
// feed must never unban everything (an HTML error page, an empty
// response, a half-written file read as "no entries") nor ban the whole
// Internet (a "0.0.0.0/0" line, and with it the host's own admin access).
// The rules below follow from that: when in doubt, a load fails, and a
// failed load changes nothing: the last good list stays enforced until
// the feed is fixed.
//
// # Format
//
// UTF-8 text, one entry per line, LF or CRLF line endings, an optional
// byte order mark at the start:
//
//	# Example feed, 2026-03-02
//	192.0.2.1
//	198.51.100.0/24         ; SBL123456
//	2001:db8:bad::/48 # comment after whitespace
//	::ffff:203.0.113.9      # read as 203.0.113.9
//
// An entry is an IPv4 or IPv6 address or CIDR prefix. Spaces and tabs
// around it are ignored. A line is a comment when its first non-blank
// character is '#' or ';'; an entry may be followed by whitespace and a
// comment starting with '#' or ';'. Anything else after an entry makes the
// line invalid, on purpose: formats such as "address<TAB>anything" mean
// different things in different feeds (DShield's block list is "start end
// bits"), and taking the first field would silently turn a network into
// one address. A feed in such a format fails to load (see below) instead of
// loading something else than it says. Ranges ("a-b"), host names,
// addresses with a zone ("fe80::1%eth0") and "1.2.3.4#x" are invalid too.
//
// # Normalisation
//
// An address is a /32 or /128 prefix. An IPv4-mapped IPv6 address or
// prefix (::ffff:192.0.2.0/120) is read as IPv4 (192.0.2.0/24), so that
// it lands in the IPv4 set where it can match. A prefix with host bits set
// (192.0.2.1/24) is masked (192.0.2.0/24) and kept, and counted in
// List.Masked: feeds often write a network by one of its addresses. The
// list is then aggregated: sorted (IPv4 first), duplicates dropped, and
// every prefix contained in another one dropped (10.0.0.0/8 swallows
// 10.1.2.3). Adjacent prefixes are not merged: Prefixes stay the feed's own
// networks, and nftables merges intervals itself.
//
// # Safety rules
//
// A load fails, and the last good list stays, when:
//
//   - the input holds more than MaxEntries entries (ErrTooManyEntries), or
//     more than MaxEntries*128 bytes + 1 MiB (ErrTooLarge): the reader
//     never buffers more than one line of MaxLine bytes, so a huge or
//     endless response costs no memory, only the time to read the cap;
//   - more than half of the lines that are neither blank nor comments are
//     rejected, that is invalid, too wide or special-purpose (ErrNotAList): an HTML page, a
//     JSON document or a file in another format is not a list, even if a
//     few of its lines look like addresses;
//   - the input is empty: no bytes, or only whitespace (ErrEmpty). An empty
//     response or a file caught while it is being rewritten must not unban
//     everything. A list with no entries is still possible: write a
//     comment in it ("# no entries").
//
// Otherwise, bad lines are skipped and counted:
//
//   - a line that is not blank, a comment nor an entry, or longer than
//     MaxLine bytes, counts in List.Invalid (List.FirstInvalid quotes the
//     first one, for the log);
//   - a prefix shorter than /8 for IPv4 or /19 for IPv6 (MinBits4,
//     MinBits6; 0.0.0.0/0 and ::/0 among them) counts in List.TooWide
//     (List.FirstTooWide quotes the first one). A /8 is the largest block
//     ever assigned to one IPv4 holder, a /19 about the largest IPv6
//     allocation to one ISP; anything wider is a mistake, never a
//     blocklist entry;
//   - an entry in or holding special-purpose addresses, which no ban may
//     cover (bans.Special: 0.0.0.0/8, loopback, link-local, multicast,
//     broadcast, ...; lists such as FireHOL's level 1 hold a few of
//     them), counts in List.Special (List.FirstSpecial quotes the first
//     one).
//
// Allowlists (the host's own networks, its admin addresses) are the
// daemon's business: this package knows nothing of them.
//
// # Loading
//
// A Loader loads one Feed; Run reloads it every Feed.Interval (at least
// MinInterval, plus up to a tenth of it at random, so that many hosts do
// not fetch a feed at the same second). Over HTTP it sends
// "User-Agent: sipguard" and, after a successful load, If-None-Match and
// If-Modified-Since: a 304 Not Modified reply is an unchanged list. Only
// 200 (and 203) replies carry a list; any other status is an error
// (StatusError). Redirects are followed, at most 10, but never from https
// to http (ErrInsecureRedirect): a feed fetched over https must not be
// replaced by anyone on the path. Each attempt is bounded by Feed.Timeout.
//
// A file feed is read again at each interval; it must be a regular file.
// Write it atomically (write a temporary file, then rename it over the
// feed): a file read while it is being written is cut short, and so may
// load as a shorter list.
//
// A load has changed the list when its Prefixes differ from the last good
// list's; a feed that only reorders its lines or edits its comments does
// not cause an update. A failed load is retried sooner than the interval,
// after 15s, 30s, 1m and so on, doubling up to the interval.
package feeds
