package processors

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
	"github.com/weir-stream/weir/state/kv"
	"github.com/weir-stream/weir/state/memory"
)

func TestDedupeWithinAndAfterTTL(t *testing.T) {
	clock := kv.NewManualClock(time.Unix(1_700_000_000, 0))
	b, err := memory.New(kv.Config{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	p := newStateful(t, "type: dedupe\nkey: id\nttl: 10s\n", b)
	ctx := context.Background()
	pass := func(ids ...string) []string {
		t.Helper()
		in := record([]string{"id", "n"}, stringCol(ids...), int64Col(make([]int64, len(ids))...))
		out, err := p.Process(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) == 0 {
			return nil
		}
		good, bad := splitResults(t, out)
		if bad != nil {
			t.Fatalf("error rows %v", jsonRows(bad))
		}
		if s := schemaString(good); s != "id:utf8,n:int64" {
			t.Fatalf("schema %s: the rows must pass unchanged", s)
		}
		return strs(t, good, "id")
	}
	if got := pass("a", "b", "a", "c", "b"); strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("first batch passed %v", got)
	}
	clock.Advance(9 * time.Second)
	if got := pass("a", "d"); strings.Join(got, ",") != "d" {
		t.Fatalf("within the TTL passed %v", got)
	}
	clock.Advance(2 * time.Second) // 11s after a, b, c passed; 2s after d
	if got := pass("a", "b", "d", "a"); strings.Join(got, ",") != "a,b" {
		t.Fatalf("after the TTL passed %v", got)
	}
	if got := pass("a", "b"); got != nil {
		t.Fatalf("duplicates of the last batch passed %v", got)
	}
}

func TestDedupeRefreshOnDuplicate(t *testing.T) {
	clock := kv.NewManualClock(time.Unix(1_700_000_000, 0))
	b, _ := memory.New(kv.Config{Clock: clock})
	p := newStateful(t, "type: dedupe\nkey: content\nttl: 10s\nrefresh_on_duplicate: true\n", b)
	ctx := context.Background()
	n := func(vals ...string) int {
		out, err := p.Process(ctx, message.FromStrings(vals...))
		if err != nil {
			t.Fatal(err)
		}
		rows := 0
		for _, b := range out {
			rows += b.NumRows()
		}
		return rows
	}
	if n("x") != 1 {
		t.Fatal("first x dropped")
	}
	for i := 0; i < 3; i++ {
		clock.Advance(6 * time.Second) // each duplicate restarts the TTL
		if n("x") != 0 {
			t.Fatalf("x passed %d×6s after the first, within 10s of the last duplicate", i+1)
		}
	}
	clock.Advance(11 * time.Second)
	if n("x") != 1 {
		t.Fatal("x dropped 11s after the last duplicate")
	}
}

func TestDedupeKeyErrorsAndKeys(t *testing.T) {
	p := newStateful(t, "type: dedupe\nkey: 'lower(k)'\nttl: 1m\n", nil)
	b := record([]string{"k"}, nullableString([]string{"A", "", "a", "B"}, []bool{true, false, true, true}))
	var keys []string
	if err := p.(component.Keyed).Keys(b, func(_ int, key []byte) {
		if key == nil {
			keys = append(keys, "<nil>")
		} else {
			keys = append(keys, string(key))
		}
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(keys, ",") != "a,<nil>,a,b" {
		t.Fatalf("keys %v", keys)
	}
	out, err := p.Process(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	good, bad := splitResults(t, out)
	if got := strs(t, good, "k"); strings.Join(got, ",") != "A,B" {
		t.Fatalf("passed %v", got)
	}
	if bad == nil || bad.NumRows() != 1 || !strings.Contains(strs(t, bad, message.MetaError)[0], "dedupe: key:") {
		t.Fatalf("error rows %v", jsonRows(bad))
	}
}

func TestDedupeConfig(t *testing.T) {
	if _, err := newDedupe(parseProcConf(t, "type: dedupe\nkey: id\nttl: 0s\n"), component.Resources{}); err == nil ||
		!strings.Contains(err.Error(), "must be positive") {
		t.Fatalf("ttl 0: %v", err)
	}
	if _, err := newDedupe(parseProcConf(t, "type: dedupe\nkey: 'id +'\nttl: 1s\n"), component.Resources{}); err == nil {
		t.Fatal("invalid key expression: want an error")
	}
	reg := component.Lookup(component.KindProcessor, "dedupe")
	if !reg.Spec.Stateful || !reg.Spec.Field(dedupeTTL).Required || !reg.Spec.Field(dedupeKey).Required {
		t.Fatal("dedupe must be stateful with required key and ttl")
	}
	// Built outside the engine it keeps its own state.
	p, err := newDedupe(parseProcConf(t, "type: dedupe\nkey: content\nttl: 1s\n"), component.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Process(context.Background(), message.FromStrings("a", "a"))
	if err != nil || len(out) != 1 || out[0].NumRows() != 1 {
		t.Fatalf("process: %v, %v", out, err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
