package config

import (
	"fmt"
	"strings"

	"github.com/weir-stream/weir/component"
)

// substituteEnv replaces ${VAR} and ${VAR:default} in the file text with
// values from lookupEnv, before the YAML is parsed:
//
//   - ${VAR} is VAR's value; VAR unset is an error.
//   - ${VAR:default} is VAR's value, or default when VAR is unset or empty
//     (default runs to the first "}" and may be empty).
//   - $${ is a literal ${.
//   - Other text after ${ — not a name (letters, digits, '_', not starting
//     with a digit) followed by "}" or ":" on the same line — is left as it
//     is, so component templates such as ${!count} pass through.
//
// A reference never spans lines, so substitution keeps line numbers unless a
// value itself contains newlines. Every unset variable is reported.
func substituteEnv(file string, text []byte, lookupEnv func(string) (string, bool)) ([]byte, Errors) {
	s := string(text)
	if !strings.Contains(s, "${") {
		return text, nil
	}
	var (
		out  strings.Builder
		errs Errors
		line = 1
	)
	out.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c == '\n' {
			line++
		}
		if strings.HasPrefix(s[i:], "$${") {
			out.WriteString("${")
			i += 3
			continue
		}
		if name, def, hasDef, n := envRef(s[i:]); n > 0 {
			switch val, set := lookupEnv(name); {
			case hasDef && val == "":
				out.WriteString(def)
			case !set:
				errs = append(errs, &component.FieldError{File: file, Line: line,
					Msg: fmt.Sprintf("environment variable %s is not set (write ${%s:default} to give a default)", name, name)})
			default:
				out.WriteString(val)
			}
			i += n
			continue
		}
		out.WriteByte(c)
		i++
	}
	if errs != nil {
		return nil, errs
	}
	return []byte(out.String()), nil
}

// envRef parses a reference at the start of s: ${NAME} or ${NAME:default}.
// n is its length, 0 when s does not start with one.
func envRef(s string) (name, def string, hasDef bool, n int) {
	if !strings.HasPrefix(s, "${") {
		return "", "", false, 0
	}
	j := 2
	for j < len(s) && (s[j] == '_' || isLetter(s[j]) || (j > 2 && s[j] >= '0' && s[j] <= '9')) {
		j++
	}
	if j == 2 || j == len(s) {
		return "", "", false, 0
	}
	name = s[2:j]
	switch s[j] {
	case '}':
		return name, "", false, j + 1
	case ':':
		end := strings.IndexAny(s[j:], "}\n")
		if end < 0 || s[j+end] != '}' {
			return "", "", false, 0
		}
		return name, s[j+1 : j+end], true, j + end + 1
	}
	return "", "", false, 0
}

func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
