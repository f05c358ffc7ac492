package storage

import "sync"

// dirSyncer makes renames durable with as few directory fsyncs as it can:
// concurrent Puts into one directory share an fsync (group commit). A
// caller's rename is covered by any fsync of the directory that starts
// after the rename. So a caller with no fsync of the directory running
// starts one; otherwise it joins the round that starts when the running
// one ends, which all callers arriving meanwhile share. A checkpoint's
// files are written 8 at a time into one directory, so this saves most of
// its directory fsyncs.
type dirSyncer struct {
	mu   sync.Mutex
	dirs map[string]*dirRounds
	// sync fsyncs a directory (syncDir; replaced in tests).
	sync func(dir string) error
}

// dirRounds is the fsync running on one directory and the one to follow.
type dirRounds struct {
	running, next *syncRound
}

// syncRound is one fsync and the callers it covers.
type syncRound struct {
	started bool // under dirSyncer.mu
	done    chan struct{}
	err     error // set before done is closed
}

func newDirSyncer() *dirSyncer {
	return &dirSyncer{dirs: map[string]*dirRounds{}, sync: syncDir}
}

// syncAfter returns once an fsync of dir that started after this call has
// finished, with that fsync's error.
func (s *dirSyncer) syncAfter(dir string) error {
	s.mu.Lock()
	d := s.dirs[dir]
	if d == nil {
		d = &dirRounds{}
		s.dirs[dir] = d
	}
	var r *syncRound
	if d.running == nil {
		r = &syncRound{done: make(chan struct{})}
	} else {
		if d.next == nil {
			d.next = &syncRound{done: make(chan struct{})}
		}
		r = d.next
		for !r.started && d.running != nil {
			prev := d.running
			s.mu.Unlock()
			<-prev.done
			s.mu.Lock()
		}
		if r.started { // another caller of the round started it
			s.mu.Unlock()
			<-r.done
			return r.err
		}
		d.next = nil
	}
	r.started = true
	d.running = r
	s.mu.Unlock()

	r.err = s.sync(dir)

	s.mu.Lock()
	d.running = nil
	if d.next == nil {
		delete(s.dirs, dir)
	}
	close(r.done)
	s.mu.Unlock()
	return r.err
}
