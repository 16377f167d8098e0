// Package didyoumean finds the word a user probably meant: the known name
// a mistyped config key or command is closest to.
package didyoumean

import (
	"sort"
	"strings"
)

// Closest returns the known name that word most probably means: one equal
// to it but for case and "-"/"_" (sameButCase reports that), or the
// nearest within two edits of it (the first in sorted order on a tie).
func Closest(word string, known []string) (name string, sameButCase, ok bool) {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }
	sorted := append([]string(nil), known...)
	sort.Strings(sorted)
	for _, k := range sorted {
		if norm(k) == norm(word) {
			return k, true, true
		}
	}
	best := 3
	for _, k := range sorted {
		if d := distance(k, word); d < best {
			name, best = k, d
		}
	}
	return name, false, best <= 2
}

// distance counts the edits from a to b: insertions, deletions,
// substitutions and swaps of two neighbours, the usual typos (the optimal
// string alignment distance).
func distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
