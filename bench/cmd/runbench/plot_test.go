package main

import (
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// drawPlot draws both panels from fixed data into a valid SVG whose text
// names every series.
func TestDrawPlot(t *testing.T) {
	d := plotData{
		throughput: []throughputPoint{
			{threads: 1, mbps: figure{med: 42, lo: 40, hi: 45}},
			{threads: 2, mbps: figure{med: 49, lo: 47, hi: 52}},
			{threads: 4, mbps: figure{med: 46, lo: 41, hi: 50}},
		},
		baseline: figure{med: 105, lo: 98, hi: 110},
		plainMap: figure{med: 60, lo: 58, hi: 62},
		ckpts: []ckptPoint{
			{backend: "memory", keys: 100_000, full: 2.2e6, incr: 2.3e4},
			{backend: "memory", keys: 1_000_000, full: 21.7e6, incr: 2.2e5},
			{backend: "memory", keys: 10_000_000, full: 217e6, incr: 2.2e6},
			{backend: "Pebble", keys: 100_000, full: 2.2e6, incr: 2.3e4},
			{backend: "Pebble", keys: 1_000_000, full: 21.7e6, incr: 2.2e5},
			{backend: "Pebble", keys: 10_000_000, full: 217e6, incr: 2.2e6},
		},
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "latest.svg")
	if err := drawPlot(path, d); err != nil {
		t.Fatal(err)
	}
	texts := svgTexts(t, path)
	for _, want := range []string{
		"Word count throughput vs thread_num",
		"weir word_count.yaml, emit on_end (median, min–max)",
		"hand-written Go word count, 1 thread (baseline)",
		"target: 0.5 × baseline",
		"hand-written, map[string]int (counts[string(w)]++)",
		"Checkpoint size vs state size",
		"full, memory", "full, Pebble",
		"incremental (1 % of keys changed), memory", "incremental (1 % of keys changed), Pebble",
		"100 k", "1 M", "10 M",
	} {
		if !strings.Contains(texts, want) {
			t.Errorf("the SVG has no text %q; its texts: %s", want, texts)
		}
	}

	// One panel only: the checkpoint sizes.
	path = filepath.Join(dir, "checkpoints.svg")
	if err := drawPlot(path, plotData{ckpts: d.ckpts}); err != nil {
		t.Fatal(err)
	}
	if texts := svgTexts(t, path); strings.Contains(texts, "thread_num") || !strings.Contains(texts, "full, Pebble") {
		t.Errorf("checkpoint-only plot: texts %s", texts)
	}
	if err := drawPlot(path, plotData{}); err == nil {
		t.Error("no error for a plot without data")
	}
}

// svgTexts parses path as XML, checks that its root is an svg element and
// returns the content of its text elements, joined by " | ".
func svgTexts(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := xml.NewDecoder(f)
	var texts []string
	root, inText := "", false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s is not valid XML: %v", path, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
			}
			inText = tok.Name.Local == "text"
		case xml.EndElement:
			inText = false
		case xml.CharData:
			if inText {
				texts = append(texts, string(tok))
			}
		}
	}
	if root != "svg" {
		t.Fatalf("%s: root element %q, want svg", path, root)
	}
	return strings.Join(texts, " | ")
}

func TestKeysLabel(t *testing.T) {
	for n, want := range map[int]string{100_000: "100 k", 1_000_000: "1 M", 10_000_000: "10 M", 1500: "1500"} {
		if got := keysLabel(n); got != want {
			t.Errorf("keysLabel(%d) = %q, want %q", n, got, want)
		}
	}
}
