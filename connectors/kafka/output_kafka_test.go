package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

// userBatch has columns user (string) and n (int64) and no __value__, so
// the payload is a JSON object per row. User "" is null.
func userBatch(users []string) *message.Batch {
	ub := array.NewStringBuilder(message.Alloc)
	nb := array.NewInt64Builder(message.Alloc)
	for i, u := range users {
		if u == "" {
			ub.AppendNull()
		} else {
			ub.Append(u)
		}
		nb.Append(int64(i))
	}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "user", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "n", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	return message.New(array.NewRecordBatch(schema, []arrow.Array{ub.NewArray(), nb.NewArray()}, int64(len(users))))
}

func TestOutputKeyExpressionAndCompression(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	ctx := testCtx(t, 60*time.Second)
	// Kafka's compression attribute codes.
	codes := map[string]uint8{"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
	users := make([]string, 200)
	for i := range users {
		users[i] = fmt.Sprintf("user-%d", i%7)
	}
	users[5] = "" // null key

	for codec, code := range codes {
		t.Run(codec, func(t *testing.T) {
			topic := "out-" + codec
			if err := c.CreateTopic(topic, 1, nil); err != nil {
				t.Fatal(err)
			}
			out := newTestOutput(t, addrs, map[string]any{
				"topic": topic, "compression": codec,
				"key": `user == nil ? nil : user + "/" + string(n % 2)`,
			})
			if err := out.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			if err := out.Write(ctx, userBatch(users)); err != nil {
				t.Fatal(err)
			}
			if err := out.Close(ctx); err != nil {
				t.Fatal(err)
			}
			recs := consume(t, addrs, topic, len(users))
			compressed := 0
			for i, r := range recs {
				var v struct {
					User *string
					N    int64
				}
				if err := json.Unmarshal(r.Value, &v); err != nil || v.N != int64(i) {
					t.Fatalf("record %d: value %s (%v)", i, r.Value, err)
				}
				want := fmt.Sprintf("%s/%d", users[i], i%2)
				if users[i] == "" {
					if r.Key != nil {
						t.Fatalf("record %d: key %q, want none", i, r.Key)
					}
				} else if string(r.Key) != want {
					t.Fatalf("record %d: key %q, want %q", i, r.Key, want)
				}
				// kgo sends a batch uncompressed when compressing does
				// not make it smaller (a lone first record may be).
				if got := r.Attrs.CompressionType(); got != code && got != 0 {
					t.Fatalf("record %d: compression %d, want %d (%s)", i, got, code, codec)
				} else if got == code {
					compressed++
				}
			}
			if compressed < len(recs)/2 {
				t.Fatalf("%d of %d records compressed with %s", compressed, len(recs), codec)
			}
		})
	}
}

// A column name as the key expression uses that column; values of a
// __value__ batch are written as they are.
func TestOutputKeyColumnAndValues(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	ctx := testCtx(t, 30*time.Second)
	if err := c.CreateTopic("kv", 1, nil); err != nil {
		t.Fatal(err)
	}
	b := message.FromStrings("a", "bb", "")
	b = b.WithColumn("id", func() arrow.Array {
		bld := array.NewInt64Builder(message.Alloc)
		bld.AppendValues([]int64{10, 20, 30}, nil)
		return bld.NewArray()
	}())
	out := newTestOutput(t, addrs, map[string]any{"topic": "kv", "key": "id"})
	if err := out.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := out.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(ctx); err != nil {
		t.Fatal(err)
	}
	recs := consume(t, addrs, "kv", 3)
	for i, want := range []string{"a", "bb", ""} {
		if string(recs[i].Value) != want || string(recs[i].Key) != fmt.Sprint(10*(i+1)) {
			t.Fatalf("record %d: key %q value %q", i, recs[i].Key, recs[i].Value)
		}
	}
}

func TestOutputBrokerDown(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "out"))
	if err != nil {
		t.Fatal(err)
	}
	addrs := c.ListenAddrs()
	out := newTestOutput(t, addrs, map[string]any{})
	if err := out.Connect(testCtx(t, 10*time.Second)); err != nil {
		c.Close()
		t.Fatal(err)
	}
	if err := out.Write(testCtx(t, 10*time.Second), message.FromStrings("before")); err != nil {
		c.Close()
		t.Fatal(err)
	}
	c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	err = out.Write(ctx, message.FromStrings("after", "the", "broker", "left"))
	if err == nil {
		t.Fatal("write with the broker gone succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("write returned after %v", d)
	}
	if !strings.Contains(err.Error(), addrs[0]) {
		t.Fatalf("error %q does not name the broker", err)
	}
	closeCtx, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	start = time.Now()
	_ = out.Close(closeCtx) // may report the records it could not flush
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("close took %v", d)
	}
}

func TestOutputBrokerUnreachable(t *testing.T) {
	addr := closedAddr(t)
	out := newTestOutput(t, []string{addr}, map[string]any{})
	err := out.Connect(testCtx(t, 10*time.Second))
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("connect to %s: %v, want an error naming the broker", addr, err)
	}
	if err := out.Write(testCtx(t, time.Second), message.FromStrings("x")); err == nil {
		t.Fatal("write without a connection succeeded")
	}
	if err := out.Close(testCtx(t, time.Second)); err != nil {
		t.Fatal(err)
	}
}

func TestOutputSASL(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			c := newCluster(t, kfake.EnableSASL(), kfake.Superuser(mech, "weir", "secret"))
			addrs := c.ListenAddrs()
			ctx := testCtx(t, 30*time.Second)
			sasl := func(pass string) map[string]any {
				return map[string]any{"mechanism": mech, "username": "weir", "password": pass}
			}

			bad := newTestOutput(t, addrs, map[string]any{"sasl": sasl("wrong")})
			if err := bad.Connect(ctx); err == nil {
				t.Fatal("connect with a wrong password succeeded")
			}
			out := newTestOutput(t, addrs, map[string]any{"topic": "in", "sasl": sasl("secret")})
			if err := out.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			if err := out.Write(ctx, message.FromStrings("one", "two")); err != nil {
				t.Fatal(err)
			}
			if err := out.Close(ctx); err != nil {
				t.Fatal(err)
			}
			in := newTestInput(t, addrs, map[string]any{"sasl": sasl("secret")})
			if err := in.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			_, _, rows := read(t, ctx, in, 2)
			if err := in.Close(ctx); err != nil {
				t.Fatal(err)
			}
			got := []string{rows[0].value, rows[1].value}
			if !(got[0] == "one" && got[1] == "two" || got[0] == "two" && got[1] == "one") {
				t.Fatalf("read %q", got)
			}
		})
	}
}

func TestOutputConfigErrors(t *testing.T) {
	for name, c := range map[string]struct {
		vals  map[string]any
		field string
	}{
		"exactly_once":    {map[string]any{"exactly_once": true, "acks": "none"}, "acks"},
		"bad key":         {map[string]any{"key": "user +"}, "key"},
		"batch_max_bytes": {map[string]any{"batch_max_bytes": int64(10)}, "batch_max_bytes"},
		"scram no user":   {map[string]any{"sasl": map[string]any{"mechanism": "SCRAM-SHA-512"}}, "sasl.username"},
		"no topic":        {map[string]any{"topic": ""}, "topic"},
	} {
		c.vals["brokers"] = []any{"x:9092"}
		if _, ok := c.vals["topic"]; !ok {
			c.vals["topic"] = "out"
		}
		_, err := newOutput(testConfig(component.KindOutput, outputSpec(), c.vals), component.Resources{})
		if err == nil || !strings.Contains(err.Error(), "streams[0].output."+c.field+":") {
			t.Errorf("%s: error %v, want one naming %s", name, err, c.field)
		}
	}
}

func BenchmarkOutputWrite(b *testing.B) {
	c := newCluster(b)
	addrs := c.ListenAddrs()
	ctx := context.Background()
	for _, codec := range []string{"none", "lz4"} {
		b.Run(codec, func(b *testing.B) {
			out := newTestOutput(b, addrs, map[string]any{"compression": codec})
			if err := out.Connect(ctx); err != nil {
				b.Fatal(err)
			}
			defer out.Close(ctx)
			const rows, size = 1000, 100
			values := make([][]byte, rows)
			for i := range values {
				values[i] = bytes.Repeat([]byte{byte('a' + i%26)}, size)
			}
			batch := message.FromValues(values)
			b.SetBytes(rows * size)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := out.Write(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
