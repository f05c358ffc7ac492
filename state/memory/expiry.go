package memory

import "math"

// expiryQueue holds (key group, key) items in time buckets by expiry. A
// cell is queued in at most one bucket at a time (Cell.qb names it); items
// left behind by deletes or refreshed expiries are stale and are dropped or
// re-queued when their bucket comes due. Buckets are numbered relative to
// base so that a cell can store its bucket in 32 bits.
type expiryQueue struct {
	gran    int64 // bucket width in ms; 0 until the first push
	base    int64
	buckets map[uint32][]qitem
	heap    []uint32 // bucket numbers present, min-heap
}

type qitem struct {
	gi  int32
	key string
}

// push queues (gi, key) for exp and returns its bucket, or 0 if exp is too
// far away to be queued (CleanupExpired still finds it).
func (q *expiryQueue) push(ttl int64, gi int, key string, exp int64) uint32 {
	if q.gran == 0 {
		q.gran = 1000
		if ttl > 0 {
			q.gran = min(max(ttl/32, 1), 60_000)
		}
		q.base = exp/q.gran - 1<<20
		q.buckets = make(map[uint32][]qitem)
	}
	r := exp/q.gran - q.base
	if r < 1 {
		r = 1
	}
	if r > math.MaxUint32 {
		return 0
	}
	rb := uint32(r)
	items, ok := q.buckets[rb]
	if !ok {
		q.heapPush(rb)
	}
	q.buckets[rb] = append(items, qitem{gi: int32(gi), key: key})
	return rb
}

// due reports whether some bucket is due at now: every item in it has
// expired.
func (q *expiryQueue) due(now int64) bool {
	return len(q.heap) > 0 && (int64(q.heap[0])+q.base+1)*q.gran <= now
}

// pop removes and returns an item of the earliest due bucket.
func (q *expiryQueue) pop(now int64) (qitem, uint32, bool) {
	for q.due(now) {
		rb := q.heap[0]
		items := q.buckets[rb]
		if len(items) == 0 {
			delete(q.buckets, rb)
			q.heapPop()
			continue
		}
		it := items[len(items)-1]
		items[len(items)-1] = qitem{}
		q.buckets[rb] = items[:len(items)-1]
		return it, rb, true
	}
	return qitem{}, 0, false
}

// len returns the number of queued items (for tests).
func (q *expiryQueue) len() int {
	n := 0
	for _, items := range q.buckets {
		n += len(items)
	}
	return n
}

func (q *expiryQueue) heapPush(x uint32) {
	q.heap = append(q.heap, x)
	i := len(q.heap) - 1
	for i > 0 {
		p := (i - 1) / 2
		if q.heap[p] <= q.heap[i] {
			break
		}
		q.heap[p], q.heap[i] = q.heap[i], q.heap[p]
		i = p
	}
}

func (q *expiryQueue) heapPop() {
	n := len(q.heap) - 1
	q.heap[0] = q.heap[n]
	q.heap = q.heap[:n]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && q.heap[l] < q.heap[m] {
			m = l
		}
		if r < n && q.heap[r] < q.heap[m] {
			m = r
		}
		if m == i {
			return
		}
		q.heap[m], q.heap[i] = q.heap[i], q.heap[m]
		i = m
	}
}
