// Package server serves weir's operational HTTP endpoints: /health,
// /readiness, /liveness and /metrics (Prometheus), plus whatever handlers
// other packages add (POST /checkpoints).
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// StreamHealth is one stream's line in /health.
type StreamHealth struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Records int64  `json:"records"`
}

// Health is the body of /health.
type Health struct {
	Status  string         `json:"status"` // ok | degraded | failed
	Ready   bool           `json:"ready"`
	Streams []StreamHealth `json:"streams"`
}

// HealthFunc reports the current health.
type HealthFunc func() Health

// Server is the HTTP server.
type Server struct {
	mux    *http.ServeMux
	srv    *http.Server
	ln     net.Listener
	log    *slog.Logger
	health HealthFunc
	done   chan struct{}
}

// New creates a server; Start binds it.
func New(reg *prometheus.Registry, health HealthFunc, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{mux: http.NewServeMux(), health: health, log: log}
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	s.mux.HandleFunc("GET /health", s.handleHealth)
	s.mux.HandleFunc("GET /readiness", s.handleReadiness)
	s.mux.HandleFunc("GET /liveness", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("ok\n"))
	})
	return s
}

// Handle adds a handler (before Start).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Start listens on addr and serves in the background.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("health server: listen on %s: %w", addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("health server stopped", "error", err)
		}
	}()
	s.log.Info("serving health and metrics", "address", ln.Addr().String())
	return nil
}

// Addr returns the bound address.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close stops the server and waits for it.
func (s *Server) Close(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}

func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	h := s.health()
	w.Header().Set("Content-Type", "application/json")
	if h.Status == "failed" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(h)
}

func (s *Server) handleReadiness(w http.ResponseWriter, _ *http.Request) {
	if s.health().Ready {
		_, _ = w.Write([]byte("ready\n"))
		return
	}
	http.Error(w, "not ready", http.StatusServiceUnavailable)
}
