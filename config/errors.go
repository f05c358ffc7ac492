package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/weir-stream/weir/component"
)

// Errors is every problem found in a config file, sorted by line. Its Error
// is one problem per line:
//
//	pipeline.yaml:7: streams[0].pipeline.thread_num: expected an integer, got "four"
type Errors []*component.FieldError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = formatFieldError(e)
	}
	return strings.Join(lines, "\n")
}

// sort orders the errors by line, keeping the order in which problems on
// the same line were found.
func (es Errors) sort() {
	sort.SliceStable(es, func(i, j int) bool { return es[i].Line < es[j].Line })
}

// formatFieldError is FieldError.Error without the empty key path of errors
// that are about the file rather than a key (YAML syntax, ${VAR}).
func formatFieldError(e *component.FieldError) string {
	if e.Path != "" {
		return e.Error()
	}
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Closest returns the candidate nearest to name when it is near enough to
// be a likely typo (a case difference, or one or two edits for longer
// names), or "". Ties go to the earliest candidate.
func Closest(name string, candidates []string) string {
	best, bestDist := "", -1
	lname := strings.ToLower(name)
	for _, c := range candidates {
		d := editDistance(lname, strings.ToLower(c))
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	limit := 1
	if len(name) >= 5 {
		limit = 2
	}
	if bestDist < 0 || bestDist > limit || bestDist >= len(name) {
		return ""
	}
	return best
}

// didYouMean returns `; did you mean "x"?` for the closest candidate, or "".
func didYouMean(name string, candidates []string) string {
	if c := Closest(name, candidates); c != "" && c != name {
		return fmt.Sprintf("; did you mean %q?", c)
	}
	return ""
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and transpositions of adjacent
// characters each cost one ("kafak" is one edit from "kafka").
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// d[i][j] is the distance between ra[:i] and rb[:j].
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
