// Package freepbx reads FreePBX's /var/log/asterisk/freepbx_security.log:
// parser "freepbx", for failed logins to the administration GUI and the
// User Control Panel (UCP). FreePBX's Asterisk logs (full, fail2ban,
// security) are read by the "asterisk" parser.
//
// # Who writes the file
//
// Every line comes from freepbx_log_security() in FreePBX/framework
// amp_conf/htdocs/admin/libraries/utility.functions.php, in one of two
// layouts depending on the framework version (the version boundary was not
// established):
//
//	[2026-03-02 09:40:11] [freepbx_security.NOTICE]: <message> [] []    current: Monolog
//	[2019-05-10 10:10:10] <message>                                     legacy
//
// The current function logs through the Monolog driver "freepbx_security"
// at notice level (only when AMPDISABLELOG is off and LOG_OUT_MESSAGES is
// on); its formatter (FreePBX/framework
// amp_conf/htdocs/admin/libraries/BMO/Logger.class.php, createLogDriver) is
// LineFormatter("[%datetime%] [%channel%.%level_name%]: %message% %context%
// %extra%\n", "Y-m-d H:i:s") with inline line breaks off, so newlines in a
// message become spaces and the empty context and extra print "[] []".
// With AMPSYSLOGLEVEL set to a LOG_* level the same driver writes the same
// text to syslog under the ident freepbx_security, which is read too:
//
//	Mar  2 09:40:11 pbx freepbx_security[2345]: [2026-03-02 09:40:11] [freepbx_security.NOTICE]: <message> [] []
//
// The legacy function appended "[$tstamp] $txt\n" with file_put_contents
// and date("Y-m-d H:i:s"): no escaping at all.
//
// # Messages
//
// Three callers write failures, all with the same text (searched in
// FreePBX/framework, FreePBX/ucp and FreePBX/userman):
//
//	framework amp_conf/htdocs/admin/libraries/gui_auth.php   admin GUI login (only when a user name was typed)
//	ucp       htdocs/includes/User.class.php (_authenticate) UCP login
//	userman   PasswordExpReminder.php (logAuthFailure)        login pre-check of the password-expiry feature
//
//	Authentication failure for <user> from <REMOTE_ADDR>
//
// <user> is what was typed ("unknown" when empty; userman HTML-encodes it
// with FILTER_SANITIZE_FULL_SPECIAL_CHARS first), REMOTE_ADDR is the web
// server's TCP peer. Each is an event: kind admin_auth_failed, service
// gui, user the user name.
//
// The UCP's success line, read the same way, is an event of kind
// auth_succeeded, which no rule counts (the daemon uses it to spot a
// guessed password):
//
//	Authentication successful for <user> from <REMOTE_ADDR>
//
// Never an event:
//
//	Possible proxy detected, forwarded headers for<user> set to <ip>
//
// It (gui_auth.php, userman) carries an address taken from the
// X-Real-IP, Client-IP or X-Forwarded-For request headers, which the
// client writes; it is also logged for every failure from a private
// address, with an empty <ip>. Other levels of the freepbx_security channel and every other line are
// ignored.
//
// Behind a reverse proxy REMOTE_ADDR is the proxy: add it to [allow].
//
// # Addresses and injection
//
// The user name precedes the address and may hold anything the login form
// accepts, including " from 203.0.113.66 [] []". The line is read from its
// end: the address is what follows the last " from ", before Monolog's
// " [] []" in the current layout, and must be a literal IP address (else
// the line is dropped as bad_address). A failure line that does not end as
// FreePBX writes it is dropped as malformed.
//
// The current layout cannot be forged: Monolog turns the newlines of a
// message into spaces, so every message is exactly one line.
//
// The legacy layout can. A user name with a newline ends the real line and
// starts new ones that the attacker writes whole, such as
// "[2019-05-10 10:10:10] Authentication failure for x from 203.0.113.66";
// the real message's last physical line ends with the real REMOTE_ADDR.
// Every forged line before it looks exactly like a real one, and a parser
// that reads one line at a time cannot tell them apart. What is done:
//
//   - A line that starts with no timestamp can only be the rest of such a
//     message. It is dropped as injected, and from then on every legacy
//     line of the stream is dropped as injected: once an attacker has been
//     seen forging lines, none is trusted.
//   - Once the stream holds a Monolog line the legacy writer is gone, so a
//     legacy-looking line can only be forged; each is dropped as injected.
//
// The forged lines of the first injected message still count, and an
// attacker who makes the last line look whole leaves no trace. Only the
// current (Monolog) framework closes this: update FreePBX, and keep your
// own networks in [allow] meanwhile. A legacy file read by sipguard is as
// trustworthy as the login page is unreachable.
//
// # Time
//
// The date has the year but no zone: it is in PHP's zone, which is the
// source's timezone setting (default: the host's).
package freepbx
