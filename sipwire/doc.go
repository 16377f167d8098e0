// Package sipwire is the wire sensor's reader: it turns the SIP responses
// a PBX sends into sipguard events, for any PBX, with no log at all. A PBX
// tells every client on the wire what its logs may not: a second 401/407
// on a dialog it already challenged is a refused password, a 403/404 to a
// REGISTER an unknown account, a 404/403 to an INVITE never challenged an
// unknown extension. The destination of that response is the client's
// packet source.
//
// Read parses one response (status, top Via, Call-ID, CSeq, the stale flag
// of a challenge, the To user), bounded and without allocating. A Sensor
// follows each Call-ID in a bounded LRU table and applies the rules:
//
//   - the first 401/407 on a Call-ID is a challenge: no event;
//   - a further 401/407 to a new request on that Call-ID, unless it says
//     stale=true: auth_failed (svcrack, a mistyped password: 401 -> 401);
//   - 403 or 404 to a REGISTER: unknown_user;
//   - 404 or 403 to an INVITE never challenged: unknown_extension;
//   - a first challenge not answered within ChallengeTimeout:
//     challenge_unanswered (a kind no default rule counts);
//   - a 2xx after a challenge: auth_succeeded.
//
// A response sent again by the PBX (the same transaction, by the top Via
// branch and the CSeq, and the same status) counts once. A dialog is keyed
// by the client's address and the Call-ID, so text one client writes never
// touches another's dialog.
//
// The address rule: a response counts only when its packet goes to the
// top Via's received address (or the sent-by address when there is no
// received), the address the PBX saw the request come from. Anything else
// (an attacker-chosen maddr, an ICMP fallback to sent-by, a proxy in front)
// is dropped as diverted, never an event: a forged Via cannot turn the
// PBX's answers against a third party.
//
// The package imports only the standard library and parsers: the capture
// (NFLOG in the daemon, pcap files in scan) hands it payloads.
package sipwire
