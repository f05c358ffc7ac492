package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Temporary: the harness against the at-least-once Kafka output, until the
// transactional output lands.
func TestKafkaCrashHarnessAtLeastOnce(t *testing.T) {
	b, err := os.ReadFile(exactlyOnceKafkaConfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(b), "exactly_once: true          #", "exactly_once: false #", 1)
	if cfg == string(b) {
		t.Fatal("no exactly_once to turn off")
	}
	path := writeFile(t, t.TempDir(), "exactly_once_kafka.yaml", cfg)
	crashKafkaWordCount(t, path, false, []string{"STATE_DIR=" + filepath.Join(t.TempDir(), "state")})
}
