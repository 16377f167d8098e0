// Package threecx reads 3CX logs: parser "3cx". It produces no events: no
// 3CX log line is known to carry the network source of a failed attempt,
// and sipguard bans only addresses taken from such a position.
//
// # What 3CX logs about failed authentication
//
// The one failure message with a public verbatim example is [CM102001] in
// the "Server status log" (3CX, "Analyzing registration",
// https://www.3cx.com/blog/docs/analyzing-registration/):
//
//	Authentication failed for SipReq: REGISTER 172.18.130.28 tid=917d3a45e8403958 cseq=REGISTER contact=100@172.18.130.28:42464 / 2 from(wire); Reason: Credentials don't match, ...
//
// (The page obfuscates "contact=100@172.18.130.28" as an e-mail address.)
// The part after "SipReq:" is reSIProcate's SipMessage::encodeBrief()
// (resiprocate/resiprocate resip/stack/SipMessage.cxx): "SipReq:  " and the
// method, the Request-URI's address of record, " tid=" the transaction id,
// " cseq=" the CSeq header, " contact=" the first Contact's address of
// record, " / " the CSeq number, and " from(wire)" — a flag saying the
// message came from the network, not an address. Both hosts are written by
// the client in its SIP headers: an attacker sends any Request-URI and
// Contact it likes, a victim's address included. The packet's source
// address appears nowhere.
//
// So a [CM102001] line is never an event. It is counted as a dropped line
// (reason bad_address: a failure whose only addresses are header text), so
// that "sipguard status" shows that 3CX is being attacked and that these
// lines were seen and refused; every other line is ignored.
//
// # What was searched and not found
//
// 3CX's documentation, blog and forum pages, GitHub code and issues,
// fail2ban, CrowdSec, Wazuh and Graylog rules: no public filter for 3CX
// exists, and no verbatim line was found of
//
//   - a web client or management console login failure naming the client
//     address (3CX blocks an address after more than 3 wrong logins,
//     https://help.3cx.com/kb/en-us/16-for-customers/224-i-blacklisted-the-ip-address-of-my-management-console,
//     but the log text is unpublished);
//   - an anti-hacking "IP blacklisted" event (3CX's event log reference
//     lists event ids and texts — a localized copy is at
//     https://www.3cx.cn/docs/event-log/ — but its blacklisting entries
//     could not be read in any stored copy);
//   - a verbose SIP log line printing the transport source of a request;
//   - the prefix (date, thread, level) of 3CX's log lines.
//
// A line of any of these, published verbatim and with its address shown to
// be the peer of the connection, would be parsed here.
//
// # Getting 3CX logs to sipguard
//
// On a Debian-based 3CX the logs are said (by third-party tools, not by
// 3CX) to be under /var/lib/3cxpbx/Instance1/Data/Logs/. 3CX has no
// documented syslog forwarding. A 3CX system's anti-hacking blacklist is
// kept in its PostgreSQL database (table blacklist, column ipaddr, per the
// third-party 0n1cOn3/3CX-Unblacklist script), which a future source could
// read; a parser cannot.
package threecx
