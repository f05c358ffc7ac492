package txn

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAppend measures Appends per second of each sync mode, with one
// writer and with 16 concurrent writers; each entry holds 10 payloads of
// 100 bytes (a small input batch).
func BenchmarkAppend(b *testing.B) {
	payloads := make([][]byte, 10)
	for i := range payloads {
		payloads[i] = make([]byte, 100)
	}
	for _, mode := range allModes {
		for _, writers := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/writers=%d", mode, writers), func(b *testing.B) {
				l := openLog(b, b.TempDir(), Options{SyncMode: mode})
				defer l.Close()
				ctx := context.Background()
				var n atomic.Int64
				start := time.Now()
				b.SetBytes(int64(10 * 100))
				b.ResetTimer()
				if writers == 1 {
					for b.Loop() {
						if _, err := l.Append(ctx, payloads); err != nil {
							b.Fatal(err)
						}
						n.Add(1)
					}
				} else {
					b.SetParallelism((writers + 1) / 2) // GOMAXPROCS is 2 on the test machines
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if _, err := l.Append(ctx, payloads); err != nil {
								b.Error(err)
								return
							}
							n.Add(1)
						}
					})
				}
				b.StopTimer()
				b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "appends/s")
				b.ReportMetric(float64(n.Load())/float64(max(l.syncs.Load(), 1)), "appends/fsync")
			})
		}
	}
}
