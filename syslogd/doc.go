// Package syslogd receives syslog messages over the network, for PBXs that
// cannot run sipguard themselves (Yeastar P-Series, 3CX, hosted PBXs) and
// forward their logs instead. Each message becomes the line a syslog daemon
// would have written to a file, so the parsers that read PBX log files read
// it unchanged.
//
// # Transports
//
// UDP (RFC 5426 style): one message per datagram; trailing NULs, CRs and
// LFs are removed.
//
// TCP (RFC 6587): each message is framed either by octet counting
// ("MSG-LEN SP MSG") or by a trailing LF (non-transparent framing), chosen
// per message by its first byte: a digit followed by at most 8 more and a
// space is a MSG-LEN; anything else (a '<', or a digit of an RFC 3339
// timestamp) is read up to the next LF. Empty lines between frames are
// skipped. A frame cut short by the end of the connection is dropped as
// malformed, never parsed: what it lacks might change its meaning. Prefer
// octet counting (rsyslog: omfwd TCP_Framing="octet-counted"): with LF
// framing, a newline a sender leaves inside a message ends it there, and
// what follows is read as a message of its own, with the tag its writer
// chose, which every parser trusts. Messages framed by LF are counted
// (Stats.FramedLF), and each sender using it is warned of once.
//
// A TCP connection that completes no message for Options.IdleTimeout is
// closed, so that silent or trickling peers do not hold a slot forever
// (TCP keepalive finds dead peers sooner). At most Options.MaxConns
// connections are open, and Options.MaxConnsPerSender from one address;
// any further connection is closed at once and counted.
//
// # Senders
//
// Only the addresses in Options.Senders may send. Every datagram's and
// every connection's source address (IPv4-mapped IPv6 addresses unmapped,
// zones ignored) is checked before a byte of it is parsed; anything else is
// dropped and counted, and a TCP connection from elsewhere is reset at
// once. New refuses an empty list (ErrNoSenders): a syslog port open to all
// would let anyone write log lines, and so have anyone banned. The sender
// of a Message is its packet source, never a name in its text.
//
// UDP source addresses can be forged where the network does not filter
// them (BCP 38): on an untrusted path, use TCP, whose handshake proves the
// address, or drop forged sources before they reach this host (reverse
// path filtering, a firewall rule for the syslog port).
//
// # Bounds
//
// A message longer than Options.MaxMessage bytes (framing excluded) is
// dropped whole and counted, never truncated: a cut message could be read
// as another one. An oversize TCP frame is skipped exactly (octet
// counting) or up to its LF, and the connection kept.
//
// Messages wait for emit in one queue of at most Options.QueueLines; when
// it is full, new ones are dropped and counted. The socket readers never
// wait for emit, so a flood (from anyone) cannot block reading nor grow
// memory: at most QueueLines × (MaxMessage + MaxHeader) bytes of lines,
// plus one read buffer per listener and per connection. Drops are logged
// at the first one and then at most once a minute, with their counts;
// nothing is logged per message above debug level.
//
// # Formats
//
// RFC 3164 and its common variants:
//
//	<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG
//	<PRI>Mmm dd hh:mm:ss HOST TAG: MSG          no PID
//	<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG          no HOST (glibc's syslog(3) format)
//	<PRI>2026-11-26T10:00:00.123+01:00 HOST TAG[PID]: MSG   RFC 3339 timestamp (rsyslog)
//	Mmm dd hh:mm:ss HOST TAG[PID]: MSG          no PRI
//	<PRI>TAG[PID]: MSG                          no timestamp (and no HOST)
//
// RFC 5424:
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]
//
// with "-" for nil values, structured data whose parameter values escape
// '"', '\' and ']', and an optional UTF-8 BOM before MSG.
//
// Timestamps must be valid dates and times. A message is dropped as
// malformed when it is neither of these forms, has neither a PRI nor a
// timestamp, or has no tag (RFC 3164 TAG, RFC 5424 APP-NAME): the parsers
// recognise a PBX by its tag, and a tag is never invented, since a MSG
// read where the tag should be would let its text pass for a header.
//
// # The Line
//
// Every message becomes "TIMESTAMP HOST TAG[PID]: MSG" ("TAG: MSG" without
// a PID), the RFC 3164 form syslog daemons write to files:
//
//   - TIMESTAMP: an RFC 3164 timestamp as "Mmm dd hh:mm:ss" with the day
//     space-padded (a fraction kept); an RFC 3339 or RFC 5424 one as
//     written, with its precision and zone ("2026-11-26T10:00:00.123+01:00");
//     none or nil: the time received, in RFC 3339 with microseconds and the
//     zone of Options.Now. logtime.Clock, the parsers' clock, reads all
//     of them.
//   - HOST: the message's HOST or HOSTNAME; none or nil: the sender's
//     address.
//   - TAG and PID: the RFC 3164 TAG and PID, or the RFC 5424 APP-NAME and
//     PROCID (none for a nil PROCID). An APP-NAME holding ':', '[' or ']'
//     or a PROCID holding '[' or ']' is malformed: it could shift where a
//     parser finds the tag.
//   - MSG: as received, without an RFC 5424 BOM; MSGID and STRUCTURED-DATA
//     are left out, as rsyslog's file format does.
//
// Control characters: every byte of MSG below 0x20 except TAB (NUL, CR, LF
// and the rest) and DEL is replaced by one space. A newline inside a
// message therefore never starts a second line, which text in the message
// (an attacker's SIP user name, say) could make look like a log line of its
// own; and MSG keeps its length, so a message full of control characters
// cannot be pushed over a limit. (rsyslog instead writes
// "#012"; either way the PBX parsers see one line.) The header fields hold
// printable US-ASCII only.
package syslogd
