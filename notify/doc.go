// Package notify tells other systems about bans, unbans and compromises:
// it POSTs each Event as JSON to webhooks and runs commands with it. The
// daemon calls Dispatcher.Notify from the path that bans, so everything
// here is built so that a slow, dead or hostile endpoint can never delay a
// ban; a notification is worth less than the ban it reports.
//
// # Guarantees
//
// Notify never blocks. It copies the Event into one bounded queue per
// target (Webhook.Queue, Command.Queue; 1000 by default) and returns,
// holding each target's lock only to append; no worker holds that lock
// while it delivers. When a queue is full the Event is dropped for that
// target and counted in TargetStats.Dropped. Notify's only I/O is the
// warning about drops, written through the logger (like the daemon's own
// ban lines) at the first drop and then at most once a minute per target,
// never once per event.
//
// Memory is bounded: at most Queue Events wait per target, plus the one
// being delivered. A response body is read up to 64 KiB and a command's
// output kept up to 4 KiB.
//
// Every Event a target accepts (its Events filter lets the type through) is
// counted exactly once, so that at any moment
//
//	accepted = Sent + Failed + Dropped + Queued + InFlight
//
// Each target has one worker goroutine, so its deliveries happen one at a
// time and in the order of the Notify calls; a stuck target delays only
// itself.
//
// # Webhooks
//
// An Event is POSTed as JSON (Content-Type: application/json, User-Agent:
// sipguard). A 2xx answer is delivery. A 408, a 429, any 5xx, a network
// error or a Timeout is retried up to Retries times, waiting 1s, 2s, 4s
// and so on (at most 30s) between attempts; any other status, including a
// 3xx, fails at once: redirects are never followed, so a webhook cannot
// send an Event (and its Authorization header) to another host. Delivery
// is at least once within those attempts: an endpoint that handled a
// request but answered too late gets it again, so receivers that care
// should treat (type, target, time) as the identity of an Event.
//
// Errors recorded in TargetStats.LastError and in the log never contain
// the URL: for many services (Slack, Discord, Teams) its path is the
// secret.
//
// # Commands
//
// A command runs its Argv directly, with no shell: Argv[0] must be an
// absolute path and its placeholders ({type}, {target}, {reason} and the
// rest, see Placeholders) are replaced by plain text inside each element,
// in a single pass. An attacker controls some of that text (Reason, User:
// a SIP user name such as "$(reboot)" or "; rm -rf /"), and it reaches the
// program as one argv element, unchanged except that NUL bytes, which an
// argv cannot carry, are removed, and that an element which would begin
// with an Event's text starting with "-" or "+" gets a space in front:
// a user name "-f/etc/shadow" in "{user}" reaches the program as
// " -f/etc/shadow", never as an option (logger would read the file into
// the log). Write "--" before the elements that hold placeholders where
// the program takes it; the JSON on standard input and the environment
// carry every value exactly. Argv[0] may not hold a placeholder, so an
// Event never chooses the program.
//
// The command also gets the Event's JSON on its standard input, the
// directory "/" and a minimal environment: PATH=/usr/sbin:/usr/bin:/sbin:/bin
// and SIPGUARD_EVENT_TYPE, SIPGUARD_EVENT_TARGET and so on, one for each
// placeholder. It is killed, with every process it started in its process
// group, after Timeout (10s by default). A non-zero exit or a timeout is a
// failure recorded with the last 4 KiB of its combined output. Commands are
// not retried: they may have done part of their work.
//
// # Shutdown
//
// Run returns once its context is done and every worker has stopped. A
// delivery in flight is cancelled (its request aborted, its command
// killed), and it and everything still queued are counted as Dropped:
// notifications do not hold up a shutdown. Notify after Run has returned
// drops and counts the Event.
package notify
