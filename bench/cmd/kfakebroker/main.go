// Command kfakebroker runs a kfake cluster (github.com/twmb/franz-go/pkg/kfake,
// an in-memory Kafka) as its own process, for benchmarks that must not share
// a process with the broker:
//
//	kfakebroker -ports 0 -partitions 3 -topics lines
//
// It listens on 127.0.0.1, one broker per port of -ports (0 picks a free
// port), creates the -topics with -partitions partitions each, and prints
// one line on standard output once every broker listens:
//
//	ready 127.0.0.1:PORT[,127.0.0.1:PORT...]
//
// It runs until SIGTERM or SIGINT, then closes the cluster and exits 0.
// Everything it holds is in memory and lost at exit.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	ports := flag.String("ports", "0", "comma-separated ports, one broker each (0: a free port)")
	partitions := flag.Int("partitions", 3, "partitions of each seed topic and of topics created with -1 partitions")
	topics := flag.String("topics", "", "comma-separated topics to create at start")
	autoCreate := flag.Bool("auto-create", false, "create topics that clients ask metadata for")
	flag.Parse()

	opts, err := options(*ports, *partitions, *topics, *autoCreate)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfakebroker:", err)
		os.Exit(2)
	}
	// Catch the signals before announcing the address: whoever starts us
	// may stop us as soon as it reads the line.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)

	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfakebroker: start cluster:", err)
		os.Exit(1)
	}
	// kfake has bound every listener when NewCluster returns.
	fmt.Printf("ready %s\n", strings.Join(cluster.ListenAddrs(), ","))

	<-sig
	cluster.Close()
}

// options turns the flags into kfake options.
func options(ports string, partitions int, topics string, autoCreate bool) ([]kfake.Opt, error) {
	var ps []int
	for _, s := range strings.Split(ports, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || p < 0 || p > 65535 {
			return nil, fmt.Errorf("-ports: %q is not a port", s)
		}
		ps = append(ps, p)
	}
	if partitions < 1 {
		return nil, fmt.Errorf("-partitions: %d, want ≥ 1", partitions)
	}
	opts := []kfake.Opt{kfake.Ports(ps...), kfake.DefaultNumPartitions(partitions)}
	var ts []string
	for _, t := range strings.Split(topics, ",") {
		if t = strings.TrimSpace(t); t != "" {
			ts = append(ts, t)
		}
	}
	if len(ts) > 0 {
		opts = append(opts, kfake.SeedTopics(int32(partitions), ts...))
	}
	if autoCreate {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	return opts, nil
}
