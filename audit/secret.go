package audit

import (
	"fmt"
	"strings"
	"unicode"
)

// Mask stands for a secret in output: its length only, never a character
// of it.
func Mask(secret string) string {
	return fmt.Sprintf("[%d characters, masked]", len([]rune(secret)))
}

// commonSecrets are passwords found first by brute force: the top of the
// public leaked-password lists, SIP scanners' dictionaries (sipvicious
// svcrack, sippts) and PBX defaults (FreePBX's amp111/amp109, Asterisk's
// samples).
var commonSecrets = map[string]bool{}

func init() {
	for _, s := range strings.Fields(`0000 00000 000000 1111 11111 111111 1212 1234 12345 123456 1234567
		12345678 123456789 1234567890 0123456789 654321 4321 54321 987654321 9876543210 112233 121212 123123 123321
		1q2w3e 1q2w3e4r qwerty qwerty123 qwertyuiop asdf asdfgh password password1 password123 passw0rd p@ssw0rd
		secret secret123 admin admin123 administrator root toor test test123 testing guest user default changeme
		letmein welcome welcome1 abc123 abcd1234 iloveyou monkey dragon master asterisk asterisk123 freepbx pbx
		voip voip123 sip sip123 phone telephone amp111 amp109 ampmgrpass mysecret mypassword trixbox elastix
		vicidial goautodial 3cx yeastar cisco polycom yealink snom grandstream linksys sangoma digium`) {
		commonSecrets[s] = true
	}
}

// MinSecretLength is the length below which a SIP, IAX, AMI or ARI secret
// is weak (the rule, and Yeastar's and 3CX's generated-password
// policies).
const MinSecretLength = 12

// weakness says why secret is weak for the account names (user, section,
// extension), with the severity; ok is false when it is not weak.
func weakness(secret string, names ...string) (why string, sev Severity, ok bool) {
	low := strings.ToLower(secret)
	var reasons []string
	sev = Info
	raise := func(s Severity, r string) {
		reasons = append(reasons, r)
		sev = max(sev, s)
	}
	switch {
	case secret == "":
		raise(Critical, "empty")
	case commonSecrets[low]:
		raise(Critical, "in the list of common passwords scanners try first")
	}
	for _, n := range names {
		if n == "" || secret == "" {
			continue
		}
		if closeTo(low, strings.ToLower(n)) {
			raise(Critical, "equal or close to the account name")
			break
		}
	}
	if secret != "" {
		if isDigits(secret) {
			raise(High, "digits only")
		}
		n := len([]rune(secret))
		if n < MinSecretLength {
			raise(High, fmt.Sprintf("shorter than %d characters", MinSecretLength))
		}
		// Length makes up for kinds: 16 random hex digits are 64 bits.
		if (n < 16 && classes(secret) < 3) || repetitive(secret) {
			raise(Medium, "low strength (under 16 characters of fewer than 3 kinds, or repeated or sequential characters)")
		}
	}
	if len(reasons) == 0 {
		return "", Info, false
	}
	return strings.Join(reasons, "; "), sev, true
}

// closeTo is true when secret is the name, contains it, is contained in it,
// or is it reversed: the guesses of every SIP scanner (svcrack -d with
// the extension, sippts' "user as password").
func closeTo(secret, name string) bool {
	if secret == name || reverse(secret) == name {
		return true
	}
	if len(name) >= 3 && strings.Contains(secret, name) && len(secret)-len(name) <= 4 {
		return true
	}
	return len(secret) >= 3 && strings.Contains(name, secret)
}

func reverse(s string) string {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// classes counts the kinds of character: lower, upper, digit, other.
func classes(s string) int {
	var lower, upper, digit, other bool
	for _, r := range s {
		switch {
		case unicode.IsLower(r):
			lower = true
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsDigit(r):
			digit = true
		default:
			other = true
		}
	}
	n := 0
	for _, b := range []bool{lower, upper, digit, other} {
		if b {
			n++
		}
	}
	return n
}

// repetitive is true when half or more of the characters repeat or follow
// the one before (111111, 123456, abcdef, 135790 is not).
func repetitive(s string) bool {
	r := []rune(s)
	if len(r) < 4 {
		return len(r) > 0
	}
	run := 0
	for i := 1; i < len(r); i++ {
		if d := r[i] - r[i-1]; d == 0 || d == 1 || d == -1 {
			run++
		}
	}
	return run*2 >= len(r)
}

// sequentialPIN is true for a PIN whose digits are all equal or all step
// by one (0000, 1234, 4321).
func sequentialPIN(pin string) bool {
	r := []rune(pin)
	if len(r) < 2 {
		return true
	}
	d := r[1] - r[0]
	if d < -1 || d > 1 {
		return false
	}
	for i := 2; i < len(r); i++ {
		if r[i]-r[i-1] != d {
			return false
		}
	}
	return true
}
