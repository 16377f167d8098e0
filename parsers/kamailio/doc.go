// Package kamailio reads the failure lines that Kamailio writes with
// sipguard's configuration snippet, contrib/kamailio/sipguard.cfg: parser
// "kamailio".
//
// Kamailio logs nothing about failed authentications by itself, so sipguard
// defines the line: the snippet writes one with xlog for every failure of
// REGISTER or INVITE authentication.
//
// # The line
//
//	sipguard: v1 time=2026-11-27T10:00:00+0100 src=198.51.100.7 port=5060 proto=udp kind=auth_failed method=REGISTER code=-2 au="100" from="100" to="100" ruri="" ua="friendly-scanner"
//
// The fixed part comes first, in this order, one space apart:
//
//	time    $timef(%Y-%m-%dT%H:%M:%S%z): Kamailio's clock, with its zone
//	src     $si: the packet's source address, from the kernel
//	port    $sp: its source port
//	proto   $pr: udp, tcp, tls, sctp, ws or wss
//	kind    set by the script: auth_failed, unknown_user, rejected_connection (or any sipguard kind)
//	method  $rm: upper-case letters only (REGISTER, INVITE)
//	code    the auth function's return code (-2 wrong password, -8 auth user mismatch,
//	        -3 unknown user, -1 malformed credentials) or a status the script chose
//
// Then what the client wrote, each as key="value": au (the Authorization
// user name), from, to and ruri (the From, To and Request-URI users) and ua
// (the User-Agent). Each is cut to 64 bytes ({s.substr,0,64}) and
// percent-encoded ({s.urlencode.param}). Other key="value" fields encoded
// the same way may follow; they are ignored. Event.User is the au value,
// else the To user of a REGISTER, else the From user, decoded.
//
// # Why it cannot be forged from a SIP packet
//
// Kamailio's xlog prints pseudo-variables as they are. Checked on Kamailio
// 5.6.3 by sending hostile packets to contrib/kamailio/kamailio-test.cfg
// (testdata/capture/hostile.py, run by capture.sh and syslog.sh there; the
// lines are in testdata/real_*.log):
//
//   - $ua keeps a folded header's CRLF, so a raw User-Agent writes a new
//     line; $au cuts at an escaped quote; a NUL ends the printed text.
//   - {s.escape.common} escapes quotes and backslashes but not CR or LF.
//   - {s.escape.user} and {s.escape.param} fail on a control character and
//     print an empty value: the field is lost.
//   - {s.urlencode.param} leaves only A-Z a-z 0-9 - . _ ~ and writes
//     every other byte as %xx (quote, space, =, %, CR, LF, NUL, bytes above
//     127). It never fails; an absent header prints "".
//   - A field longer than xlog's 4 KiB buffer makes xlog drop the whole
//     line (an attacker would evade the log): hence {s.substr,0,64} first.
//
// So an encoded field holds no space, quote or newline: it cannot end its
// quotes, add a field or start a line. And the fixed part, where the
// address is, precedes every attacker byte and holds only values that
// Kamailio's parser or the kernel produce. The parser reads it exactly:
// every key, in order, each value in its syntax (an address literal, a
// port 1-65535, a known kind, proto and level). A line that carries
// "sipguard: " but does not parse exactly is dropped and counted:
// malformed, bad_address (a host name, a port or a zone where the address
// should be), bad_time; it is never guessed.
//
// # Prefixes
//
//	 1(4242) NOTICE: <script>: <line>                        kamailio -E, plain log engine (rank %2d, pid)
//	{ "idx": 1, "pid": 4242, ..., "message": "<line>" }     kamailio -E --log-engine=json:M (also "kamailio.message", and "msg" in the CEE form)
//	Nov 27 10:00:00 pbx /usr/sbin/kamailio[4242]: NOTICE: <script>: <line>  syslog (the tag is argv[0], or log_name: its base name must start with kamailio)
//	Nov 27 10:00:00 pbx kamailio[4242]: { ... "message": "<line>" }  syslog, JSON engine (also "@cee: {...}")
//
// The time is always the one in the line, so it is exact whichever prefix
// carries it. Kamailio's log_prefix and xlog's prefix parameter, which put
// text before "<script>: " or before the line, are not supported: such
// lines are dropped as malformed, which shows in sipguard status.
//
// # The limit of the plain log engine
//
// Kamailio's own error messages quote packets it cannot parse raw,
// newlines included ("parse_msg: message=<...>", "bad header field [...]"),
// and write them to the same stderr. A malformed packet can therefore put
// a whole line into the file that looks exactly like a sipguard line, with
// any address in it (testdata/limit_stderr_dumps.log). No parser can tell
// it from a real one. Two defences:
//
//   - Use the JSON log engine (kamailio --log-engine=json:M ...), which
//     escapes newlines in every message: the same packets then yield
//     nothing (testdata/real_json.log). Or log through syslog with rsyslog,
//     which escapes control characters by default: the newline becomes
//     #012 (seen with rsyslog 8.2302 of Debian 12: testdata/real_syslog.log).
//   - In any form, a line ending in a carriage return (Kamailio's records
//     never do: it is raw SIP text) and the line after it are dropped as
//     injected. This stops raw CRLF text, such as a folded header printed by
//     some other xlog, not a malformed packet with bare newlines.
//
// # Kinds and time
//
// The kind is the script's: sipguard.cfg logs -2 and -8 as auth_failed, -3
// and users not in the account list as unknown_user, -1 as
// rejected_connection; -5 (no credentials: the first leg of every
// registration), -4 (stale nonce) and -6 (nonce reused) are not failures.
// The service is always sip. A time without a zone gets the source's
// timezone; one before 1970 is dropped as bad_time.
package kamailio
