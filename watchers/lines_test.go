package watchers_test

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/sipguard/sipguard/watchers"
)

func readAll(t *testing.T, r io.Reader, max int) ([]string, []int64, *watchers.LineReader) {
	t.Helper()
	lr := watchers.NewLineReader(r, max)
	var lines []string
	var nums []int64
	for {
		l, n, err := lr.Next()
		if err == io.EOF {
			return lines, nums, lr
		}
		if err != nil {
			t.Fatal(err)
		}
		lines, nums = append(lines, string(l)), append(nums, n)
	}
}

func TestLineReader(t *testing.T) {
	long := strings.Repeat("x", 100)
	tests := []struct {
		name string
		in   string
		want []string
		nums []int64
		long int64
	}{
		{"plain", "a\nbb\nccc\n", []string{"a", "bb", "ccc"}, []int64{1, 2, 3}, 0},
		{"unterminated last line", "a\nbb", []string{"a", "bb"}, []int64{1, 2}, 0},
		{"crlf", "a\r\nb\r\n", []string{"a", "b"}, []int64{1, 2}, 0},
		{"empty lines", "\n\na\n", []string{"", "", "a"}, []int64{1, 2, 3}, 0},
		{"nul and invalid utf-8", "a\x00b\n\xff\xfe\n", []string{"a\x00b", "\xff\xfe"}, []int64{1, 2}, 0},
		{"too long skipped, numbering kept", "a\n" + long + "\nb\n", []string{"a", "b"}, []int64{1, 3}, 1},
		{"too long last line", "a\n" + long, []string{"a"}, []int64{1}, 1},
		{"exactly the limit", strings.Repeat("y", 64) + "\n", []string{strings.Repeat("y", 64)}, []int64{1}, 0},
		{"empty", "", nil, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// One byte at a time too: line splitting must not depend on reads.
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				got, nums, lr := readAll(t, r, 64)
				if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
					t.Errorf("lines %q; want %q", got, tc.want)
				}
				for i := range nums {
					if i < len(tc.nums) && nums[i] != tc.nums[i] {
						t.Errorf("numbers %v; want %v", nums, tc.nums)
						break
					}
				}
				if lr.Long() != tc.long {
					t.Errorf("long = %d; want %d", lr.Long(), tc.long)
				}
				if lr.Bytes() != int64(len(tc.in)) {
					t.Errorf("bytes = %d; want %d", lr.Bytes(), len(tc.in))
				}
			}
		})
	}
}

// TestLineReaderHugeLine: a 1 MB line costs no more than the buffer.
func TestLineReaderHugeLine(t *testing.T) {
	in := "a\n" + strings.Repeat("z", 1<<20) + "\nb\n"
	got, _, lr := readAll(t, strings.NewReader(in), 0)
	if strings.Join(got, "|") != "a|b" || lr.Long() != 1 {
		t.Errorf("got %d lines, long %d", len(got), lr.Long())
	}
}

func TestLineReaderError(t *testing.T) {
	boom := errors.New("boom")
	lr := watchers.NewLineReader(io.MultiReader(strings.NewReader("a\n"), iotest.ErrReader(boom)), 0)
	if l, _, err := lr.Next(); err != nil || string(l) != "a" {
		t.Fatalf("first line: %q %v", l, err)
	}
	if _, _, err := lr.Next(); !errors.Is(err, boom) {
		t.Errorf("err = %v; want boom", err)
	}
}

// TestLineReaderBuffered: Buffered says whether lines already read wait,
// so that a reader of a pipe hands over what it has without waiting.
func TestLineReaderBuffered(t *testing.T) {
	lr := watchers.NewLineReader(strings.NewReader("one\ntwo\n"), 0)
	if _, _, err := lr.Next(); err != nil {
		t.Fatal(err)
	}
	if n := lr.Buffered(); n != len("two\n") {
		t.Errorf("after the first line: %d buffered; want 4", n)
	}
	lr.Next()
	if n := lr.Buffered(); n != 0 {
		t.Errorf("after the last line: %d buffered; want 0", n)
	}
}
