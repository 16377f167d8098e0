package syslogd

import (
	"io"
	"time"
)

// Parse exposes parse to the tests.
var Parse = parse

// Frame is one result of the framer, for tests.
type Frame struct {
	Text string
	Kind string
}

// Frames splits a stream as a TCP connection would be.
func Frames(rd io.Reader, max int) ([]Frame, error) {
	f := newFramer(rd, max)
	var out []Frame
	for {
		b, k, err := f.next()
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return out, err
		}
		out = append(out, Frame{Text: string(b), Kind: k.String()})
	}
}

// SetWarnEvery changes how often drops are logged, for tests.
func SetWarnEvery(d time.Duration) (restore func()) {
	old := warnEvery
	warnEvery = d
	return func() { warnEvery = old }
}
