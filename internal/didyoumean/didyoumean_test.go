package didyoumean_test

import (
	"testing"

	"github.com/sipguard/sipguard/internal/didyoumean"
)

func TestClosest(t *testing.T) {
	known := []string{"status", "scan", "ban", "unban", "max_retry", "ban_time"}
	for _, tc := range []struct {
		word, want string
		same, ok   bool
	}{
		{"stauts", "status", false, true},
		{"sacn", "scan", false, true},
		{"BAN_TIME", "ban_time", true, true},
		{"max-retry", "max_retry", true, true},
		{"unbna", "unban", false, true},
		{"completely-different", "", false, false},
	} {
		got, same, ok := didyoumean.Closest(tc.word, known)
		if got != tc.want || same != tc.same || ok != tc.ok {
			t.Errorf("Closest(%q) = %q, %v, %v; want %q, %v, %v", tc.word, got, same, ok, tc.want, tc.same, tc.ok)
		}
	}
}
