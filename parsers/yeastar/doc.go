// Package yeastar reads the system log a Yeastar PBX forwards by syslog:
// parser "yeastar". It takes the messages of Asterisk out of the syslog
// stream and reads them with the Asterisk parser (package asterisk, with
// all its rules about attacker text); everything else is ignored.
//
// # What is known, and what is assumed
//
// Verified in public sources:
//
//   - The P-Series can forward its system logs to a third-party syslog
//     server over UDP, TCP or TLS; its log levels are Information, Notice,
//     Warning, Error, DTMF, Time Log, Debug and CDR Log (Yeastar, "System
//     Logs Overview", help.yeastar.com/en/p-series-software-edition/
//     administrator-guide/system-logs-overview.html). The Cloud Edition
//     cannot change where its logs go (same page, cloud edition).
//   - The S-Series is built on Asterisk: it offers "The Asterisk Manager
//     Interface (AMI) ... provided by Asterisk" (Yeastar S-Series VoIP PBX
//     Developer Guide, support.yeastar.com/hc/en-us/articles/235972668), and
//     Yeastar's 2012 MyPBX troubleshooting guide lists "Frequently used
//     asterisk commands" on the PBX's command line.
//   - The P-Series records security events by name: Web User Login Failed,
//     Linkus Client Login Failed, Web User Locked Out, Linkus User Blocked
//     Out, Extension Registration Blocked Out, Auto Defense IP Blocked Out
//     (help.yeastar.com/en/p-series-appliance-edition/administrator-guide/
//     operation-logs-overview.html, event-notification-overview.html).
//
// Not found anywhere public (searched: Yeastar's documentation and forums,
// GitHub code and issues, fail2ban, CrowdSec, Wazuh and Graylog rules): a
// single verbatim line of a Yeastar system log or syslog stream, or any
// filter for one. So these are hypotheses, to be checked on a unit:
//
//   - that the forwarded system log carries Asterisk's logger messages as
//     Asterisk's syslog channel writes them, under the program tag
//     "asterisk" (logger.c: openlog("asterisk", LOG_PID, facility), body
//     "LEVEL[lwp]: file:line in function: message");
//   - that the P-Series runs Asterisk at all (only the S-Series and MyPBX
//     are shown to);
//   - the syslog framing the PBX sends (BSD or RFC 5424, with or without
//     a host name) — every common form is accepted.
//
// No evidence shows Yeastar using another program tag, so no tag is
// rewritten: a message counts only under the tag "asterisk". No
// Yeastar-specific line (web or Linkus login failures, blocked IPs) is
// read: their text has never been published, and guessing it would mean
// guessing where the address is.
//
// # Lines
//
// sipguard's syslog source (package syslogd) hands over every message as a
// syslog daemon writes it to a file, "TIMESTAMP HOST TAG[PID]: MSG", with
// control characters in MSG replaced by spaces. The parser reads that
// form, and also the raw forms a capture or another receiver may give it:
//
//	Mar  2 09:50:01 p550 asterisk[812]: NOTICE[1291]: res_pjsip/pjsip_distributor.c:722 in log_failed_request: Request ...
//	2026-03-02T09:50:01.123456+01:00 p550 asterisk[812]: NOTICE[1291]: ...    RFC 3339 timestamp
//	<13>Mar  2 09:50:01 p550 asterisk[812]: NOTICE[1291]: ...                 as received, with <PRI>
//	<13>Mar  2 09:50:01 asterisk[812]: NOTICE[1291]: ...                      no host name (BusyBox syslogd)
//	<13>1 2026-03-02T09:50:01.123+01:00 p550 asterisk 812 - - NOTICE[1291]: ...   RFC 5424
//	Mar  2 09:50:01 p550 asterisk[812]: [Mar  2 09:50:01] NOTICE[1291] chan_sip.c: ...   a forwarded file channel line
//
// What follows the header is read exactly as the "asterisk" parser reads
// it (see package asterisk): every failure message of chan_sip, PJSIP, the
// security log, AMI and IAX2, with the address taken only from its
// format-string position. Messages of other programs are ignored.
//
// # Newlines
//
// Asterisk prints URI-decoded extensions, so a Request-URI with %0A writes
// a newline into a message. One syslog message must stay one line:
// package syslogd replaces the control characters of a message by spaces
// (rsyslog writes #012), and the Asterisk parser reads the message whole,
// with its rules for attacker text. Where a message was split at its
// newlines anyway (a file written by a syslog daemon that does not escape
// them), the rest becomes lines without a syslog header, which the
// attacker wrote whole: such a line is never read as a failure. It is
// dropped as injected if it looks like an Asterisk failure line, and
// ignored otherwise. A forged line that carries a whole syslog header is
// caught by the Asterisk parser's quarantine after the message it breaks
// (see package asterisk).
//
// # Time
//
// A BSD header has no year and no zone: the year is inferred and the zone
// is the source's timezone, which must be the PBX's. RFC 5424 timestamps
// carry their zone. A date inside the message (a forwarded file channel
// line) is preferred to the header's.
package yeastar
