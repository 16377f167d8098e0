// Package asterisk reads Asterisk (and FreePBX) logs: parser "asterisk".
//
// # Lines
//
// Every prefix Asterisk and the tools around it write:
//
//	[Nov 26 10:00:00] NOTICE[1234] chan_sip.c: <message>                 file channel, dateformat %b %e %T (default)
//	[2026-11-26 10:00:00] NOTICE[1234][C-0000abcd] chan_sip.c: <message>  %F %T (FreePBX), call id
//	[2026-11-26 10:00:00.123] ...                                         %F %T.%3q
//	[date] NOTICE[1234]: chan_sip.c:29080 handle_request_register: <message>   [plain] formatter, console
//	Nov  4 18:30:40 host asterisk[32229]: NOTICE[32257]: chan_sip.c:23417 in handle_request_register: <message>
//	NOTICE[566]: chan_sip.c:28926 handle_request_register: <message>      journal copy without a date
//	{"hostname":...,"timestamp":...,"logmsg":{"level":"NOTICE","message":...}}   [json] formatter
//
// Syslog lines count only with the program tag "asterisk". Console colour
// codes (kept by journald) are removed. Only NOTICE, WARNING, ERROR and
// SECURITY lines can be failures; VERBOSE, DEBUG and the rest are skipped
// after a few bytes, which is most of a busy log.
//
// # Messages
//
// Each message is recognised by its source file and its fixed text, as
// printed by the format strings of Asterisk 1.8 to 22:
//
//	chan_sip.c           Registration from '<To>' failed for '<ip:port>' - <reason>      every reason
//	chan_sip.c           Call from '<peer>' (<ip:port>) to extension '<exten>' rejected ...
//	pjsip_distributor.c  Request ['<method>' ]from '<From>' failed for '<ip:port>' (callid: <id>) - <msg>[ after N tries in X ms]
//	res_pjsip_session.c  Call from '<endpoint>' (<TRANSPORT>:<ip>:<port>) ...  /  <endpoint>: Call (<TRANSPORT>:<ip:port>) ...
//	res_security_log.c   SecurityEvent="FailedACL|InvalidAccountID|ChallengeResponseFailed|InvalidPassword",...,RemoteAddress="IPV4/UDP/<ip>/<port>",...
//	manager.c            <ip> failed to authenticate as '<user>'  (and nonexistent user, IP ACL)
//	chan_iax2.c          Host <ip:port> failed to authenticate as <user>, No registration for peer '<peer>' (from <ip>), ...
//	Ext. <exten>         "Rejecting unknown SIP connection from <ip[:port]>"   (FreePBX dialplan; whole messages only)
//
// One success is read too: SuccessfulAuth with UsingPassword="1" (SIP,
// PJSIP, AMI) is an event of kind auth_succeeded, which no rule counts; the
// daemon uses it to spot a guessed password. Without a password (an
// endpoint identified by its address) it is ignored.
//
// Never an event: "Failed to authenticate device" (no packet address, only
// the From header), FreePBX's "Friendly Scanner from" (Via header),
// ChallengeSent, any other dialplan line, any VERBOSE or DEBUG line, and any
// host name: no DNS lookup is ever made.
//
// Kinds: wrong passwords are auth_failed; unknown peers, endpoints and
// accounts unknown_user; ACL, domain and transport refusals acl_denied;
// calls to unknown extensions unknown_extension; AMI login failures
// admin_auth_failed; FreePBX's rejected connections (and chan_sip's "RTP
// initialization failed" and "Unknown failure") rejected_connection.
//
// # Addresses and injection
//
// The address is read only from the position its format string gives it.
// Where attacker text (To and From headers, Call-IDs, user names,
// extensions) is only on one side of it, the line is read from the other
// side. Where it is on both sides (pjsip's From and Call-ID, the security
// log's SessionID and challenge values) the address frame, the fixed text
// around a valid address, must occur exactly once: the real one is always
// there, so any copy an attacker adds makes the line ambiguous, and it is
// dropped and counted rather than guessed; except where the field order
// settles it (a pjsip From that is a bare SIP URI cannot hold a frame, so
// the first frame after it is real; FailedACL, InvalidAccountID and
// SuccessfulAuth print nothing a client writes after RemoteAddress, so
// the last one is). A line that reaches the logger's 8191-byte limit is
// then dropped as malformed: its real address may have been cut off.
// Lines whose address slot holds a host name or a masked address are
// dropped as bad_address.
//
// Asterisk writes some attacker text as it came, raw newlines included:
// URI-decoded extensions (chan_sip, pjsip, the dialplan) and IAX2 fields
// (raw bytes). The rest of such a message becomes lines the attacker
// writes. After such a message, the lines that fit in what it can still
// span (its attacker fields' longest: 79 bytes for a pjsip or dialplan
// extension, 255 for an IAX2 field, the logger's 8 KiB for chan_sip) are
// its window: events there count for the message's sender, or when the
// line names the thread that logged the message; others are dropped as
// injected. The line after a message cut short is its rest: an event of
// kind injection for its sender. Messages whose address follows the
// attacker text (IAX2 "No registration", the dialplan's rejected
// connection) are read only where a line is a whole message (the [json]
// formatter, parsers.Options.Whole: the journal), and dropped as
// plain_text elsewhere. See Parser.Parse and docs/pbx.md; the [json]
// formatter is immune: see contrib/asterisk/logger.conf.
//
// A nonexistent AMI user makes Asterisk log two lines for one attempt; the
// second is not counted again.
//
// # Time
//
// Security events carry EventTV, with date and zone, which is preferred.
// Otherwise the line's timestamp is used; without a year it gets the
// current one (the previous one when that would put it more than a day in
// the future); without a zone, the source's timezone. Journal lines without
// any date get no time: the caller stamps them.
package asterisk
