package config

import "testing"

func TestSubstituteEnv(t *testing.T) {
	lookup := func(k string) (string, bool) {
		v, ok := map[string]string{"HOST": "kafka", "EMPTY": "", "PORT": "9092"}[k]
		return v, ok
	}
	for in, want := range map[string]string{
		"no references":                 "no references",
		"${HOST}:${PORT}":               "kafka:9092",
		"${MISSING:localhost:9092}":     "localhost:9092",
		"${EMPTY:fallback}":             "fallback",
		"[${EMPTY}]":                    "[]",
		"${MISSING:}x":                  "x",
		"$${HOST} and $$ and $HOST":     "${HOST} and $$ and $HOST",
		"a: 1\nb: ${HOST}\n# ${PORT}\n": "a: 1\nb: kafka\n# 9092\n",
		"$${":                           "${",
	} {
		got, errs := substituteEnv("f.yaml", []byte(in), lookup)
		if errs != nil {
			t.Errorf("%q: %v", in, errs)
			continue
		}
		if string(got) != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}

	_, errs := substituteEnv("f.yaml", []byte("a: 1\nb: ${NOPE}\n\nc: ${HOST} ${ALSO_NOPE}\nd: ${bad name}\ne: ${HOST"), lookup)
	want := `f.yaml:2: environment variable NOPE is not set (write ${NOPE:default} to give a default)
f.yaml:4: environment variable ALSO_NOPE is not set (write ${ALSO_NOPE:default} to give a default)`
	if errs == nil || errs.Error() != want {
		t.Errorf("errors:\n%v\nwant:\n%s", errs, want)
	}
}
