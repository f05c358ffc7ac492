package kafka

import (
	"strings"
	"testing"

	"github.com/weir-stream/weir/config"
)

// The config is rejected when the transaction timeout does not outlast a
// checkpoint (interval + timeout + restart time), in weir lint and weir run.
func TestTransactionTimeoutCheckedAgainstCheckpoints(t *testing.T) {
	const text = `state: {enabled: true, checkpoint_interval_ms: 600000, checkpoint_timeout_ms: 600000}
streams:
  - input: {type: kafka, brokers: ["127.0.0.1:9"], topics: [in]}
    output: {type: kafka, brokers: ["127.0.0.1:9"], topic: t, exactly_once: true}
`
	_, err := config.Parse("p.yaml", []byte(text), func(string) (string, bool) { return "", false })
	want := "p.yaml:4: streams[0].output.transactional_timeout: 15m0s is too short for exactly_once"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Parse = %v, want %q", err, want)
	}
	ok := strings.Replace(text, "exactly_once: true", "exactly_once: true, transactional_timeout: 30m", 1)
	if _, err := config.Parse("p.yaml", []byte(ok), func(string) (string, bool) { return "", false }); err != nil {
		t.Fatalf("a long enough timeout is rejected: %v", err)
	}
}
