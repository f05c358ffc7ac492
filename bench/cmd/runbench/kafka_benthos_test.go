package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"
)

func TestPassOutputChecksLines(t *testing.T) {
	rec := func(v string) *kgo.Record { return &kgo.Record{Value: []byte(v)} }
	o := newPassOutput(map[string]int32{"a b": 2, "c": 1})
	for _, v := range []string{"a b", "c", "a b"} {
		o.record(rec(v))
	}
	if dups, err := o.result(true); err != nil || dups != 0 {
		t.Fatalf("exact output: %d duplicates, %v", dups, err)
	}
	o.record(rec("c")) // a duplicate: fine at-least-once, not exactly-once
	if dups, err := o.result(false); err != nil || dups != 1 {
		t.Errorf("one duplicate, at-least-once: %d duplicates, %v", dups, err)
	}
	if _, err := o.result(true); err == nil {
		t.Error("one duplicate, exactly-once: no error")
	}

	missing := newPassOutput(map[string]int32{"a b": 2, "c": 1})
	missing.record(rec("a b"))
	missing.record(rec("c"))
	if _, err := missing.result(false); err == nil || !strings.Contains(err.Error(), "1 input lines missing") {
		t.Errorf("a line missing: %v", err)
	}
	unknown := newPassOutput(map[string]int32{"c": 1})
	unknown.record(rec("c"))
	unknown.record(rec("x"))
	if _, err := unknown.result(false); err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("a record not in the input: %v", err)
	}
}

// TestBenthosKafkaConfigs checks that the Benthos configs read what the
// driver sets: brokers, topics and group from the environment, kafka_franz
// in and out, one pipeline thread, and the batch size the report states.
func TestBenthosKafkaConfigs(t *testing.T) {
	for _, name := range []string{"kafka_pass.yaml", "kafka_count.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "..", benthosKafkaModule, "configs", name))
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			Input struct {
				Franz struct {
					Brokers  []string `yaml:"seed_brokers"`
					Topics   []string `yaml:"topics"`
					Group    string   `yaml:"consumer_group"`
					Batching struct {
						Count string `yaml:"count"`
					} `yaml:"batching"`
				} `yaml:"kafka_franz"`
			} `yaml:"input"`
			Pipeline struct {
				Threads int `yaml:"threads"`
			} `yaml:"pipeline"`
			Output struct {
				Franz struct {
					Brokers []string `yaml:"seed_brokers"`
					Topic   string   `yaml:"topic"`
					Key     string   `yaml:"key"`
				} `yaml:"kafka_franz"`
			} `yaml:"output"`
		}
		if err := yaml.Unmarshal(data, &cfg); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		in, out := cfg.Input.Franz, cfg.Output.Franz
		if strings.Join(in.Brokers, ",") != "${KAFKA_BROKERS}" || strings.Join(out.Brokers, ",") != "${KAFKA_BROKERS}" ||
			strings.Join(in.Topics, ",") != "${INPUT_TOPIC}" || in.Group != "${CONSUMER_GROUP}" || out.Topic != "${OUTPUT_TOPIC}" {
			t.Errorf("%s: kafka_franz input %+v, output %+v: not from the driver's environment", name, in, out)
		}
		if want := "${BATCH_COUNT:32}"; in.Batching.Count != want || kbBenthosBatch != 32 {
			t.Errorf("%s: batching count %q, want %q (kbBenthosBatch %d)", name, in.Batching.Count, want, kbBenthosBatch)
		}
		if cfg.Pipeline.Threads != 1 {
			t.Errorf("%s: %d pipeline threads, want 1", name, cfg.Pipeline.Threads)
		}
		if wantKey := map[string]string{"kafka_pass.yaml": "", "kafka_count.yaml": "${! @word }"}[name]; out.Key != wantKey {
			t.Errorf("%s: output key %q, want %q", name, out.Key, wantKey)
		}
	}
}
