package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/weir-stream/weir/config"
	"github.com/weir-stream/weir/server"
)

// Pipeline is every stream of one config file.
type Pipeline struct {
	Streams []*Stream
}

// New builds every stream of a config. Errors are configuration errors.
func New(root *config.Root, opts Options) (*Pipeline, error) {
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = root.ShutdownTimeout
	}
	opts.EnsureDefaults()
	p := &Pipeline{}
	for _, sc := range root.Streams {
		s, err := NewStream(sc, opts)
		if err != nil {
			return nil, err
		}
		p.Streams = append(p.Streams, s)
	}
	return p, nil
}

// Run runs every stream until each has ended (bounded inputs) or ctx is
// cancelled (graceful stop). It returns the streams' errors joined.
func (p *Pipeline) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(p.Streams))
	for i, s := range p.Streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Run(ctx); err != nil {
				errs[i] = fmt.Errorf("stream %s: %w", s.Name, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Ready reports whether every stream is running (connected, not retrying).
func (p *Pipeline) Ready() bool {
	for _, s := range p.Streams {
		if st := s.Status(); st != StatusRunning && st != StatusStopped {
			return false
		}
	}
	return true
}

// Health summarizes the streams for the health endpoints.
func (p *Pipeline) Health() server.Health {
	h := server.Health{Status: "ok", Ready: p.Ready()}
	for _, s := range p.Streams {
		st := s.Status()
		switch st {
		case StatusFailed:
			h.Status = "failed"
		case StatusRetrying:
			if h.Status == "ok" {
				h.Status = "degraded"
			}
		}
		h.Streams = append(h.Streams, server.StreamHealth{Name: s.Name, Status: st.String(), Records: s.records.Load()})
	}
	return h
}
