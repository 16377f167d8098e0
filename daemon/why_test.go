package daemon_test

import (
	"context"
	"testing"
	"time"
)

// TestWhyLinesEndAtTheBan: the lines why shows for a ban are those that
// led to it, ending with the rule's count, even when later failures of
// the address arrive in the same read (an attack tool sends faster than
// a ban is enforced).
func TestWhyLinesEndAtTheBan(t *testing.T) {
	e := newEnv(t)
	r := start(t, e.config(), nil)
	appendLines(t, e.log, failures("198.51.100.7", 9, time.Now())...) // one write: one batch
	if !eventually(func() bool { _, ok := banned(r.fw, "198.51.100.7/32"); return ok }) {
		t.Fatalf("not banned:\n%s", r.logs)
	}
	w, err := r.client.Why(context.Background(), "198.51.100.7")
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Lines) != 5 {
		t.Fatalf("%d lines; want the rule's 5: %+v", len(w.Lines), w.Lines)
	}
	for i, l := range w.Lines {
		if l.Line != int64(i+1) {
			t.Errorf("line %d of the ban is log line %d; want %d (the ban came at the 5th)", i+1, l.Line, i+1)
		}
	}
}
