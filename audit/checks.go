package audit

// Guides the checks come from.
const (
	srcBestPractices = "Asterisk README-SERIOUSLY.bestpractices.md (github.com/asterisk/asterisk)"
	srcSevenSteps    = "Seven Steps to Better SIP Security with Asterisk (Digium, J. Todd, 2009)"
	srcBook          = "Asterisk: The Definitive Guide, 5th ed., chapter \"Security\""
	srcFreePBX       = "Sangoma, FreePBX security checklist (wiki.freepbx.org, \"Securing your PBX\")"
	srcPwRules       = "Yeastar and 3CX password rules (12+ characters, not the extension, not common); NIST SP 800-63B 5.1.1.2"
	srcSamples       = "Asterisk's configs/samples/*.conf.sample"
	srcVersions      = "docs.asterisk.org, \"Asterisk Versions\" (release and end-of-life dates)"
)

// Checks lists every check sipguard audit runs. docs/audit.md documents
// each (a test keeps them in step).
var Checks = []Check{
	{ID: "CONF-EXEC", Severity: High, Title: "#exec in a configuration file",
		Why: "#exec runs a program each time the file is read (with execincludes=yes): whoever can write that program or file runs code as Asterisk.",
		Fix: "Replace the #exec with a generated file and #include it; keep execincludes=no in asterisk.conf.", Source: srcSamples + " (asterisk.conf.sample: execincludes)"},
	{ID: "CONF-PROBLEM", Severity: Info, Title: "line Asterisk refuses or ignores",
		Why: "Asterisk skips this line or refuses the file: a setting you think is in force may not be (an ACL, a password, allowguest=no).",
		Fix: "Correct the line; 'asterisk -rx \"core reload\"' and the log show what Asterisk reads.", Source: "Asterisk main/config.c"},
	{ID: "CONF-UNREADABLE", Severity: Low, Title: "configuration file cannot be read",
		Why: "The audit cannot check what it cannot read.", Fix: "Run sipguard audit as root, or as the user Asterisk runs as.", Source: "sipguard"},
	{ID: "FILE-WORLD-READABLE", Severity: Medium, Title: "secrets in a world-readable file",
		Why: "Every local user and every compromised web application can read the SIP, AMI or database passwords in it.",
		Fix: "chown asterisk:asterisk FILE && chmod 640 FILE (0600 for amportal.conf/freepbx.conf).", Source: srcBook},

	{ID: "AST-LIVE-DANGEROUSLY", Severity: High, Title: "live_dangerously=yes",
		Why: "It lets dialplan functions such as SHELL() and FILE() be called from AMI, ARI and external protocols: remote command execution for anyone with AMI originate.",
		Fix: "Set live_dangerously=no in [options] of asterisk.conf (the default since 12.8).", Source: srcBestPractices + " (Manager Class Authorizations)"},
	{ID: "AST-EXECINCLUDES", Severity: Medium, Title: "execincludes=yes",
		Why: "#exec lines in any configuration file run programs as Asterisk.",
		Fix: "Set execincludes=no in [options] of asterisk.conf.", Source: srcSamples + " (asterisk.conf.sample)"},
	{ID: "AST-RUNS-AS-ROOT", Severity: Medium, Title: "Asterisk runs as root",
		Why: "Any hole in Asterisk, or an AMI user with write=system, gives root on the host.",
		Fix: "Set runuser=asterisk and rungroup=asterisk in [options] of asterisk.conf (FreePBX sets AMPASTERISKUSER).", Source: srcBook},

	{ID: "PJSIP-WEAK-PASSWORD", Severity: High, Title: "weak PJSIP password",
		Why: "SIP scanners (sipvicious svcrack, sippts) try the extension, short numbers and common passwords first, thousands a minute; a registered attacker places calls billed to you.",
		Fix: "Give every auth section a random password of 16+ characters (pwgen -s 20 1).", FreePBX: "Applications > Extensions > the extension > Secret (and Settings > Advanced Settings > Enforce Strong Secrets)", Source: srcPwRules},
	{ID: "PJSIP-NO-AUTH", Severity: High, Title: "PJSIP endpoint without authentication",
		Why: "An endpoint with no auth= and no identify section matching an address is found by the user part of the From header: anyone who names it gets its context.",
		Fix: "Add auth= to the endpoint, or an identify section (type=identify, match=the trunk's addresses) for a trunk.", FreePBX: "Connectivity > Trunks: set the trunk's host/match, never leave an extension without a secret", Source: srcBestPractices},
	{ID: "PJSIP-ANONYMOUS", Severity: High, Title: "PJSIP anonymous endpoint",
		Why: "Calls that match no endpoint go to the endpoint named anonymous; when its context reaches outbound dialling, anyone on the internet places calls.",
		Fix: "Remove the anonymous endpoint, or give it a context that only reaches your inbound numbers.", FreePBX: "Settings > Asterisk SIP Settings > Allow Anonymous Inbound SIP Calls: No", Source: srcBestPractices},
	{ID: "PJSIP-NO-TLS", Severity: Medium, Title: "SIP without TLS on a public transport",
		Why: "Over UDP/TCP the digest exchange, the SIP headers and (without SRTP) the audio cross the internet in the clear: anyone on the path can record calls and crack weak passwords offline.",
		Fix: "Add a transport with protocol=tls and use it with media_encryption=sdes (or dtls) for phones outside your network.", FreePBX: "Settings > Asterisk SIP Settings > SIP Settings [chan_pjsip] > TLS; the extension's Media Encryption", Source: srcBook},
	{ID: "PJSIP-NO-SRTP", Severity: Low, Title: "SIP over TLS, audio in the clear",
		Why: "The endpoint signals over TLS but its calls' audio (RTP) crosses the network unencrypted: anyone on the path records the calls.",
		Fix: "Set media_encryption=sdes (or dtls) on endpoints that use the TLS transport.", FreePBX: "Applications > Extensions > the extension > Advanced > Media Encryption: SRTP via in-band key exchange", Source: srcBook},
	{ID: "PJSIP-NO-ACL", Severity: Medium, Title: "no PJSIP ACL",
		Why: "With no permit/deny anywhere, every address on the internet may register and call; an ACL limits the damage of a guessed password.",
		Fix: "Add a type=acl section (deny=0.0.0.0/0.0.0.0, permit=your networks) or permit/deny on the endpoints.", FreePBX: "Applications > Extensions > the extension > Advanced > Permit/Deny", Source: srcSevenSteps},

	{ID: "SIP-ALLOWGUEST", Severity: High, Title: "chan_sip allows guests",
		Why: "allowguest=yes (chan_sip's default) takes calls from anyone, unauthenticated, into the [general] context.",
		Fix: "Set allowguest=no in [general] of sip.conf.", FreePBX: "Settings > Asterisk SIP Settings > Allow Anonymous Inbound SIP Calls: No", Source: srcBestPractices},
	{ID: "SIP-ALWAYSAUTHREJECT", Severity: Medium, Title: "alwaysauthreject=no",
		Why: "chan_sip then answers 'not found' for unknown users and 'wrong password' for known ones: scanners list your extensions before guessing passwords.",
		Fix: "Set alwaysauthreject=yes in [general] of sip.conf.", Source: srcSevenSteps},
	{ID: "GUEST-OUTBOUND", Severity: Critical, Title: "unauthenticated calls reach outbound dialling",
		Why: "Guests, anonymous endpoints or endpoints without authentication land in a context that dials out: toll fraud needs no password at all.",
		Fix: "Point guest and anonymous contexts at a context that only reaches your own extensions or inbound numbers, and disable guests.", FreePBX: "Settings > Asterisk SIP Settings > Allow Anonymous Inbound SIP Calls: No", Source: srcBestPractices},
	{ID: "SIP-INSECURE", Severity: High, Title: "insecure= on a dynamic peer",
		Why: "insecure=invite (or port,invite, very) skips authentication of INVITEs; on a host=dynamic peer anyone can call as it.",
		Fix: "Remove insecure= from dynamic peers; keep it only on trunks with a fixed host.", Source: srcSamples + " (sip.conf.sample: insecure)"},
	{ID: "SIP-WEAK-SECRET", Severity: High, Title: "weak chan_sip secret",
		Why: "SIP scanners try the extension, short numbers and common passwords first; a guessed secret places calls billed to you.",
		Fix: "Give every peer a random secret of 16+ characters.", FreePBX: "Applications > Extensions > the extension > Secret", Source: srcPwRules},

	{ID: "IAX-GUEST", Severity: High, Title: "IAX2 guest user",
		Why: "A [guest] user takes unauthenticated IAX2 calls into its context.",
		Fix: "Remove the [guest] section from iax.conf.", Source: srcSamples + " (iax.conf.sample)"},
	{ID: "IAX-CALLTOKEN", Severity: Medium, Title: "requirecalltoken=no",
		Why: "Without call tokens, spoofed IAX2 packets can exhaust call numbers (AST-2009-006): a denial of service from anywhere.",
		Fix: "Remove requirecalltoken=no; set it per peer only for old devices that cannot do call tokens.", Source: "Asterisk security advisory AST-2009-006"},
	{ID: "IAX-WEAK-SECRET", Severity: High, Title: "weak IAX2 secret",
		Why: "A guessed IAX2 secret places calls billed to you.", Fix: "Use a random secret of 16+ characters, or RSA keys (auth=rsa).", Source: srcPwRules},

	{ID: "DIALPLAN-EXTEN-UNFILTERED", Severity: High, Title: "Dial with ${EXTEN} under a wide pattern",
		Why: "Under _X. or _. the dialled string may hold '&' or other characters: the caller injects extra channels (e.g. a second Dial to an international number).",
		Fix: "Use ${FILTER(0-9,${EXTEN})} (or a tighter pattern such as _NXXNXXXXXX) in the Dial.", Source: srcBestPractices + " (Dialplan Injection)"},
	{ID: "DIALPLAN-DISA-NOPASS", Severity: Critical, Title: "DISA without a password",
		Why: "DISA gives a dial tone; without a password anyone who reaches the line dials out.",
		Fix: "Give DISA a passcode or a password file, and reach it only from a PIN-protected context.", FreePBX: "Applications > DISA > PIN", Source: srcBook},
	{ID: "FREEPBX-ALLOW-SIP-ANON", Severity: High, Title: "FreePBX ALLOW_SIP_ANON=yes",
		Why: "FreePBX then sends anonymous SIP calls into its inbound routes; a misconfigured route lets them reach outbound trunks.",
		Fix: "Set Allow Anonymous Inbound SIP Calls to No.", FreePBX: "Settings > Asterisk SIP Settings > Allow Anonymous Inbound SIP Calls: No", Source: srcFreePBX},
	{ID: "FREEPBX-DEFAULT-PASS", Severity: Critical, Title: "FreePBX default password",
		Why: "amp111 (AMI) and amp109 (database) are FreePBX's published defaults, in every scanner's list: AMI originate and the database are then open to anyone who reaches them.",
		Fix: "Change AMPMGRPASS (Settings > Advanced Settings > Asterisk Manager Password) and the database password.", FreePBX: "Settings > Advanced Settings > Asterisk Manager Password", Source: srcFreePBX},

	{ID: "AMI-OPEN", Severity: High, Title: "AMI reachable from every address",
		Why: "The manager interface listens on all addresses and the user has no permit: anyone on the internet can try its secret, then originate calls or run commands.",
		Fix: "Set bindaddr=127.0.0.1 in [general] of manager.conf, and deny=0.0.0.0/0.0.0.0 plus permit=your hosts for each user.", Source: srcBestPractices + " (Manager Class Authorizations)"},
	{ID: "AMI-WEAK-SECRET", Severity: High, Title: "weak AMI secret",
		Why: "An AMI login with originate or system rights is toll fraud and command execution.",
		Fix: "Use a random secret of 16+ characters.", FreePBX: "Settings > Advanced Settings > Asterisk Manager Password", Source: srcPwRules},
	{ID: "AMI-DANGEROUS-WRITE", Severity: Medium, Title: "AMI user may run commands or originate calls",
		Why: "write=system, command, originate or all lets the user run shell commands (System()) or place calls: whoever has the secret owns the PBX.",
		Fix: "Give each AMI user only the classes it needs (e.g. write=call,reporting).", Source: srcBestPractices + " (Manager Class Authorizations)"},
	{ID: "HTTP-OPEN", Severity: Medium, Title: "Asterisk HTTP server on every address without TLS",
		Why: "ARI, AMI over HTTP and WebSocket SIP listen on all addresses in clear text: passwords cross the network readable.",
		Fix: "Set bindaddr=127.0.0.1 in http.conf, or enable tlsenable with a certificate and firewall the port.", Source: srcSamples + " (http.conf.sample)"},
	{ID: "ARI-WEAK-PASSWORD", Severity: High, Title: "weak ARI password",
		Why: "An ARI user controls calls and channels: a guessed password places calls.",
		Fix: "Use a random password of 16+ characters (password_format=crypt stores it hashed).", Source: srcPwRules},
	{ID: "VM-WEAK-PIN", Severity: Medium, Title: "weak voicemail PIN",
		Why: "Voicemail with a guessable PIN is a classic fraud route: the attacker sets call forwarding or uses the voicemail's call-out to dial abroad.",
		Fix: "Use PINs of 6+ digits, not the mailbox number, not sequential; set minpassword=6 in [general].", FreePBX: "Applications > Extensions > the extension > Voicemail > Voicemail Password", Source: srcBook},

	{ID: "RELEASE-EOL", Severity: High, Title: "Asterisk release past its end of life",
		Why: "No security fixes are published for it any more: every later advisory stays open on this host.",
		Fix: "Upgrade to a supported release (an LTS: 20 or 22).", Source: srcVersions},
	{ID: "RELEASE-SECURITY-ONLY", Severity: Low, Title: "Asterisk release in its security-fix-only phase",
		Why: "It gets security fixes only, until its end-of-life date: plan the upgrade.",
		Fix: "Plan the upgrade to the current LTS.", Source: srcVersions},
	{ID: "RELEASE-UNKNOWN", Severity: Info, Title: "Asterisk version unknown",
		Why: "Without the version, the audit cannot say whether it still gets security fixes.",
		Fix: "Run sipguard audit where 'asterisk -V' works or /var/log/asterisk/full is readable, or give --asterisk-version.", Source: srcVersions},
}
