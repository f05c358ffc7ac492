package main

import (
	"strings"
	"testing"
)

// The baseline must split exactly as weir's split processor does
// (strings.Fields), or the counts could not be compared.
func TestWordsSplitLikeFields(t *testing.T) {
	for _, line := range []string{
		"", " ", "a", "a b", "  a  b  ", "a\tb\nc\r\n", "wb wc\n", "é à\u00a0b\u2003c", "x\u0085y", "\xffbad utf8 \xfe",
	} {
		var got []string
		words([]byte(line), func(w []byte) { got = append(got, string(w)) })
		want := strings.Fields(line)
		if strings.Join(got, "|") != strings.Join(want, "|") || len(got) != len(want) {
			t.Errorf("words(%q) = %q, want %q", line, got, want)
		}
	}
}
