package syslogd_test

import (
	"testing"

	"github.com/sipguard/sipguard/syslogd"
)

// BenchmarkParse measures converting one message into a Line.
func BenchmarkParse(b *testing.B) {
	for _, bc := range []struct{ name, msg string }{
		{"rfc3164", "<29>Mar  2 09:50:01 s50 asterisk[812]: " + asteriskBody},
		{"rfc5424", "<29>1 2026-03-02T09:50:01.250+01:00 s50 asterisk 812 - [origin ip=\"192.0.2.10\"] " + asteriskBody},
	} {
		b.Run(bc.name, func(b *testing.B) {
			msg := []byte(bc.msg)
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if _, _, err := syslogd.Parse(msg, testSender, testReceived); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
