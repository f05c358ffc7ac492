package main

import "testing"

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		word string
		n    int64
		ok   bool
	}{
		{`{"word":"wb","count":12}`, "wb", 12, true},
		{`{"word":"a\"b","count":3}`, `a"b`, 3, true},
		{`{"word":"é","count":1}`, "é", 1, true},
		{`{"count":2,"word":"x"}`, "x", 2, true},
		{`{"word":"x"}`, "", 0, false},
		{`not json`, "", 0, false},
	} {
		w, n, ok := parseLine([]byte(tc.line))
		if ok != tc.ok || (ok && (string(w) != tc.word || n != tc.n)) {
			t.Errorf("parseLine(%s) = %q, %d, %v; want %q, %d, %v", tc.line, w, n, ok, tc.word, tc.n, tc.ok)
		}
	}
}

func TestStatAndThousands(t *testing.T) {
	f := stat([]float64{3, 1, 2})
	if f.med != 2 || f.lo != 1 || f.hi != 3 {
		t.Fatalf("stat = %+v", f)
	}
	if got := thousands(12801475); got != "12 801 475" {
		t.Fatalf("thousands = %q", got)
	}
}

func TestDisableCheckpoints(t *testing.T) {
	in := "health_check:\n  enabled: true\nstate:\n  # comment\n  enabled: true   # on\n  state_dir: x\nstreams: []\n"
	got, err := disableCheckpoints(in)
	if err != nil {
		t.Fatal(err)
	}
	want := "health_check:\n  enabled: true\nstate:\n  # comment\n  enabled: false   # on\n  state_dir: x\nstreams: []\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if _, err := disableCheckpoints("state:\n  enabled: false\n"); err == nil {
		t.Fatal("no error for a config without enabled: true")
	}
}
