package main

import "testing"

func TestKafkaOutputChecksRecords(t *testing.T) {
	o := newKafkaOutput(map[string]int{"a": 2, "b": 1})
	o.add([]byte("a"), []byte(`{"word":"a","count":1}`))
	o.add([]byte("a"), []byte(`{"count":2, "word":"a"}`)) // other forms go through encoding/json
	o.add([]byte("b"), []byte(`{"word":"b","count":1}`))
	if o.nerrs != 0 || o.records != 3 || o.seen["a"][0] != 1 || o.seen["a"][1] != 1 || o.seen["b"][0] != 1 {
		t.Fatalf("good records: %+v", o)
	}
	for _, r := range [][2]string{
		{"a", `{"word":"a","count":3}`},   // above n
		{"a", `{"word":"a","count":0}`},   // below 1
		{"c", `{"word":"c","count":1}`},   // not in the input
		{"b", `{"word":"a","count":1}`},   // key is not the word
		{"a", `{"word":"a","count":"1"}`}, // malformed
	} {
		before := o.nerrs
		o.add([]byte(r[0]), []byte(r[1]))
		if o.nerrs != before+1 {
			t.Errorf("key %s value %s: no error", r[0], r[1])
		}
	}
}
