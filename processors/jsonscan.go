package processors

import (
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// A small validating JSON scanner for json_to_arrow: it finds the spans of
// values in place, without building Go values, so a batch is parsed with
// no allocation per field.

// jsonMaxDepth bounds the nesting of arrays and objects.
const jsonMaxDepth = 1000

// jsonSyntaxError is a JSON syntax error at a byte offset of a row.
type jsonSyntaxError struct {
	off int
	msg string
}

func (e *jsonSyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at offset %d: %s", e.off, e.msg)
}

func jsonErrAt(d []byte, i int, what string) error {
	if i >= len(d) {
		return &jsonSyntaxError{off: i, msg: "unexpected end of input"}
	}
	return &jsonSyntaxError{off: i, msg: fmt.Sprintf("invalid character %q %s", rune(d[i]), what)}
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

func skipJSONSpace(d []byte, i int) int {
	for i < len(d) && isJSONSpace(d[i]) {
		i++
	}
	return i
}

// scanJSONString scans the string whose opening quote is at d[i]. It
// returns the index just past the closing quote and whether the string has
// escapes.
func scanJSONString(d []byte, i int) (end int, esc bool, err error) {
	i++
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			return i + 1, esc, nil
		case c == '\\':
			esc = true
			if i+1 >= len(d) {
				return 0, false, jsonErrAt(d, i+1, "")
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) {
					return 0, false, jsonErrAt(d, len(d), "")
				}
				for k := i + 2; k < i+6; k++ {
					if hexVal(d[k]) < 0 {
						return 0, false, jsonErrAt(d, k, "in \\u escape")
					}
				}
				i += 6
			default:
				return 0, false, jsonErrAt(d, i+1, "in string escape code")
			}
		case c < 0x20:
			return 0, false, jsonErrAt(d, i, "in string literal")
		default:
			i++
		}
	}
	return 0, false, jsonErrAt(d, i, "")
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// scanJSONNumber scans the number starting at d[i]; isFloat reports a
// fraction or an exponent.
func scanJSONNumber(d []byte, i int) (end int, isFloat bool, err error) {
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		return 0, false, jsonErrAt(d, i, "in numeric literal")
	}
	if i < len(d) && d[i] == '.' {
		isFloat = true
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return 0, false, jsonErrAt(d, i, "after decimal point in numeric literal")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		isFloat = true
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return 0, false, jsonErrAt(d, i, "in exponent of numeric literal")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	return i, isFloat, nil
}

func scanJSONLiteral(d []byte, i int, lit string) (int, error) {
	for k := 0; k < len(lit); k++ {
		if i+k >= len(d) || d[i+k] != lit[k] {
			return 0, jsonErrAt(d, i+k, "in literal "+lit)
		}
	}
	return i + len(lit), nil
}

// skipJSONValue validates and skips the value starting at d[i] (no leading
// space).
func skipJSONValue(d []byte, i, depth int) (int, error) {
	if i >= len(d) {
		return 0, jsonErrAt(d, i, "")
	}
	switch c := d[i]; {
	case c == '"':
		end, _, err := scanJSONString(d, i)
		return end, err
	case c == '-' || (c >= '0' && c <= '9'):
		end, _, err := scanJSONNumber(d, i)
		return end, err
	case c == 't':
		return scanJSONLiteral(d, i, "true")
	case c == 'f':
		return scanJSONLiteral(d, i, "false")
	case c == 'n':
		return scanJSONLiteral(d, i, "null")
	case c == '{' || c == '[':
		if depth >= jsonMaxDepth {
			return 0, &jsonSyntaxError{off: i, msg: "nesting too deep"}
		}
		return skipJSONContainer(d, i, depth+1)
	}
	return 0, jsonErrAt(d, i, "looking for beginning of value")
}

func skipJSONContainer(d []byte, i, depth int) (int, error) {
	obj := d[i] == '{'
	closer := byte(']')
	if obj {
		closer = '}'
	}
	i = skipJSONSpace(d, i+1)
	if i < len(d) && d[i] == closer {
		return i + 1, nil
	}
	for {
		var err error
		if obj {
			if i >= len(d) || d[i] != '"' {
				return 0, jsonErrAt(d, i, "looking for beginning of object key string")
			}
			if i, _, err = scanJSONString(d, i); err != nil {
				return 0, err
			}
			i = skipJSONSpace(d, i)
			if i >= len(d) || d[i] != ':' {
				return 0, jsonErrAt(d, i, "after object key")
			}
			i = skipJSONSpace(d, i+1)
		}
		if i, err = skipJSONValue(d, i, depth); err != nil {
			return 0, err
		}
		i = skipJSONSpace(d, i)
		if i >= len(d) {
			return 0, jsonErrAt(d, i, "")
		}
		switch d[i] {
		case ',':
			i = skipJSONSpace(d, i+1)
		case closer:
			return i + 1, nil
		default:
			if obj {
				return 0, jsonErrAt(d, i, "after object key:value pair")
			}
			return 0, jsonErrAt(d, i, "after array element")
		}
	}
}

// appendJSONUnescaped appends the decoded content of a JSON string (s is
// the text between the quotes, already validated by scanJSONString).
func appendJSONUnescaped(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			j := i + 1
			for j < len(s) && s[j] != '\\' {
				j++
			}
			dst = append(dst, s[i:j]...)
			i = j
			continue
		}
		switch s[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := rune(hex4(s[i+2:]))
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if r2 := utf16.DecodeRune(r, rune(hex4(s[i+2:]))); r2 != utf8.RuneError {
						dst = utf8.AppendRune(dst, r2)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // " \ /
			dst = append(dst, s[i+1])
		}
		i += 2
	}
	return dst
}

func hex4(b []byte) int {
	return hexVal(b[0])<<12 | hexVal(b[1])<<8 | hexVal(b[2])<<4 | hexVal(b[3])
}
