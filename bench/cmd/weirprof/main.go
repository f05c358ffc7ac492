// Command weirprof is the weir binary with profiling: it runs the same CLI
// and, when WEIR_CPUPROFILE names a file, writes a CPU profile of the whole
// run there (WEIR_MEMPROFILE: a heap profile at exit). The benchmark driver
// uses it with -profile to find the hot spots of a workload.
//
//	WEIR_CPUPROFILE=cpu.pprof weirprof run examples/word_count.yaml
//	go tool pprof -top weirprof cpu.pprof
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"

	_ "github.com/weir-stream/weir/internal/builtin"
	"github.com/weir-stream/weir/internal/cli"
)

func main() { os.Exit(run()) }

func run() int {
	if p := os.Getenv("WEIR_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "weirprof:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "weirprof:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	code := cli.Run()
	if p := os.Getenv("WEIR_MEMPROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "weirprof:", err)
			return 1
		}
		defer f.Close()
		runtime.GC()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			fmt.Fprintln(os.Stderr, "weirprof:", err)
			return 1
		}
	}
	return code
}
