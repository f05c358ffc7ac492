package kv

import (
	"fmt"

	"github.com/twmb/murmur3"
)

// DefaultMaxKeyGroups is the number of key groups when none is configured.
// Like Flink's max parallelism it bounds how many workers a keyed operator
// can ever be split across, and it is fixed for the life of the state.
const DefaultMaxKeyGroups = 128

// MaxKeyGroupsLimit is the largest number of key groups (as in Flink). Key
// groups are stored as two bytes, and the top of that space is reserved for
// backend metadata.
const MaxKeyGroupsLimit = 1 << 15

// KeyGroupOf returns the key group of key: murmur3 (32 bit, seed 0) of the
// key bytes, modulo maxKeyGroups. It panics if maxKeyGroups < 1.
func KeyGroupOf(key []byte, maxKeyGroups int) int {
	return int(murmur3.Sum32(key) % uint32(maxKeyGroups))
}

// KeyGroupRange is the half-open range of key groups [Start, End) that one
// worker owns. The zero value is empty.
type KeyGroupRange struct {
	Start, End int
}

// FullRange returns the range of all key groups.
func FullRange(maxKeyGroups int) KeyGroupRange { return KeyGroupRange{0, maxKeyGroups} }

// Len returns the number of key groups in r.
func (r KeyGroupRange) Len() int {
	if r.End < r.Start {
		return 0
	}
	return r.End - r.Start
}

// Contains reports whether kg is in r.
func (r KeyGroupRange) Contains(kg int) bool { return kg >= r.Start && kg < r.End }

func (r KeyGroupRange) String() string { return fmt.Sprintf("[%d,%d)", r.Start, r.End) }

// RangeForWorker returns the contiguous key groups that worker index (0 ≤
// index < workers) owns when maxKeyGroups key groups are spread over
// workers workers. It is Flink's formula, so ranges differ in size by at most
// one and every key group has exactly one owner:
//
//	start = ceil(index * maxKeyGroups / workers)
//	end   = ceil((index+1) * maxKeyGroups / workers)
//
// It panics if workers < 1, index is out of range, or workers > maxKeyGroups.
func RangeForWorker(maxKeyGroups, workers, index int) KeyGroupRange {
	if workers < 1 || index < 0 || index >= workers || workers > maxKeyGroups {
		panic(fmt.Sprintf("state: RangeForWorker(%d, %d, %d): invalid arguments", maxKeyGroups, workers, index))
	}
	return KeyGroupRange{
		Start: (index*maxKeyGroups + workers - 1) / workers,
		End:   ((index+1)*maxKeyGroups + workers - 1) / workers,
	}
}

// WorkerForKeyGroup returns the index of the worker whose RangeForWorker
// contains kg. The keyed exchange routes each record with it.
func WorkerForKeyGroup(maxKeyGroups, workers, kg int) int {
	return kg * workers / maxKeyGroups
}
