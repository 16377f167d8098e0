package watchers

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// DefaultMaxLine is the longest line kept. An Asterisk message is at most
// 8 KiB; anything much longer is not a PBX log line.
const DefaultMaxLine = 64 << 10

// LineReader splits a stream into lines without ever holding more than
// one buffer of it, however long a line is. Lines longer than the limit are
// skipped and counted, not split: half a line could read as a different
// message.
type LineReader struct {
	r     *bufio.Reader
	max   int
	num   int64
	long  int64
	bytes int64
}

// NewLineReader reads r, keeping lines of at most max bytes (0:
// DefaultMaxLine).
func NewLineReader(r io.Reader, max int) *LineReader {
	if max <= 0 {
		max = DefaultMaxLine
	}
	return &LineReader{r: bufio.NewReaderSize(r, max+1), max: max}
}

// Next returns the next line without its "\n" (or "\r\n") and its 1-based
// number. A last line without a newline is returned too. The line is valid
// until the next call. At the end it returns io.EOF.
func (l *LineReader) Next() ([]byte, int64, error) {
	for {
		line, err := l.r.ReadSlice('\n')
		l.bytes += int64(len(line))
		if errors.Is(err, bufio.ErrBufferFull) {
			l.num++
			l.long++
			if err := l.skip(); err != nil {
				return nil, l.num, err
			}
			continue
		}
		if len(line) == 0 && err != nil {
			return nil, l.num, err
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, l.num, err
		}
		l.num++
		line = bytes.TrimSuffix(line, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		return line, l.num, nil
	}
}

// skip discards the rest of an overlong line.
func (l *LineReader) skip() error {
	for {
		chunk, err := l.r.ReadSlice('\n')
		l.bytes += int64(len(chunk))
		switch {
		case err == nil, errors.Is(err, io.EOF):
			return nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return err
		}
	}
}

// Long returns how many lines were skipped for being too long.
func (l *LineReader) Long() int64 { return l.long }

// Bytes returns how many bytes were read.
func (l *LineReader) Bytes() int64 { return l.bytes }

// Buffered returns how many bytes are already read and not yet returned:
// a reader of a pipe hands over what it has when this is 0, rather than
// wait for more.
func (l *LineReader) Buffered() int { return l.r.Buffered() }
