package main

import (
	"bufio"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestBrokerProcess builds kfakebroker, starts it, reads its address, and
// produces to and consumes from its seed topic with franz-go; SIGTERM then
// ends it with status 0.
func TestBrokerProcess(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kfakebroker")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-ports", "0,0", "-partitions", "2", "-topics", "in,other")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	}()

	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("read the ready line: %v", err)
	}
	addrs, ok := strings.CutPrefix(strings.TrimSpace(line), "ready ")
	brokers := strings.Split(addrs, ",")
	if !ok || len(brokers) != 2 {
		t.Fatalf("ready line %q, want `ready ADDR,ADDR`", line)
	}
	for _, b := range brokers {
		if !strings.HasPrefix(b, "127.0.0.1:") || strings.HasSuffix(b, ":0") {
			t.Fatalf("address %q, want 127.0.0.1:PORT", b)
		}
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("in"),
		kgo.ConsumeStartOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for i := 0; i < 10; i++ {
		recs = append(recs, &kgo.Record{Topic: "in", Value: []byte{'a' + byte(i)}})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	partitions := map[int32]bool{}
	for got := 0; got < len(recs); {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before the deadline", got, len(recs))
		}
		if errs := fs.Errors(); len(errs) > 0 {
			t.Fatalf("fetch: %v", errs[0].Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			partitions[r.Partition] = true
		})
	}
	for p := range partitions {
		if p < 0 || p > 1 {
			t.Errorf("record in partition %d; the topic has 2", p)
		}
	}
	cl.Close()

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit within 20 s of SIGTERM")
	}
}

func TestOptions(t *testing.T) {
	if opts, err := options("0, 9092", 3, "a, ,b", true); err != nil || len(opts) != 4 {
		t.Errorf("good flags: %d options, %v", len(opts), err)
	}
	for _, bad := range []struct {
		ports string
		parts int
	}{{"x", 1}, {"-1", 1}, {"70000", 1}, {"", 1}, {"0", 0}} {
		if _, err := options(bad.ports, bad.parts, "", false); err == nil {
			t.Errorf("-ports %q -partitions %d: no error", bad.ports, bad.parts)
		}
	}
}
