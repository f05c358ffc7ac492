package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-stream/weir/config"
	"github.com/weir-stream/weir/engine"
	"github.com/weir-stream/weir/metrics"
	"github.com/weir-stream/weir/server"
)

type runFlags struct {
	cpuProfile     string
	progress       string
	fromCheckpoint uint64
	fresh          bool
}

func newRunCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run CONFIG",
		Short: "Run the streams of a config file",
		Long: `Run the streams of a config file until their inputs end (bounded inputs such
as files) or the process receives SIGINT or SIGTERM, which stops the inputs and
drains what is in flight within shutdown_timeout. A second signal exits at once.

Exit status: 0 after a clean end or stop, 1 when a stream failed, 2 when the
config is invalid (nothing was started).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runConfig(cmd.Context(), args[0], f, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&f.progress, "progress", "auto", "progress line for bounded inputs: auto (when stderr is a terminal), always, never")
	cmd.Flags().StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile (go tool pprof) to this file")
	cmd.Flags().Uint64Var(&f.fromCheckpoint, "from-checkpoint", 0, "restore this checkpoint id instead of the newest one")
	cmd.Flags().BoolVar(&f.fresh, "fresh", false, "start with empty state, ignoring existing checkpoints (they are kept until retention removes them)")
	return cmd
}

func runConfig(ctx context.Context, path string, f runFlags, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	// Catch SIGINT/SIGTERM first thing, so a signal during start-up is a
	// graceful stop too.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return withCode(ExitConfig, err)
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			return withCode(ExitConfig, err)
		}
		defer func() { pprof.StopCPUProfile(); pf.Close() }()
	}
	root, err := config.Load(path)
	if err != nil {
		return withCode(ExitConfig, err)
	}
	logger, closeLog, err := newLogger(root.Logging, stderr)
	if err != nil {
		return withCode(ExitConfig, err)
	}
	defer closeLog()
	for _, w := range root.Warnings {
		logger.Warn(w)
	}

	if f.fresh && f.fromCheckpoint != 0 {
		return withCode(ExitConfig, fmt.Errorf("--fresh and --from-checkpoint exclude each other"))
	}
	reg := metrics.New()
	opts := engine.Options{Logger: logger, Metrics: reg, ShutdownTimeout: root.ShutdownTimeout}
	st, err := newStateSetup(ctx, root.State, &opts)
	if err != nil {
		return withCode(ExitFailure, err)
	}
	p, err := engine.New(root, opts)
	if err != nil {
		return withCode(ExitConfig, err)
	}
	if st != nil {
		if err := st.attach(ctx, p, reg, logger, f.fromCheckpoint, f.fresh); err != nil {
			return withCode(ExitFailure, err)
		}
	}

	if root.HealthCheck.Enabled {
		srv := server.New(reg.Prom, p.Health, logger)
		if st != nil {
			srv.Handle("POST /checkpoints", http.HandlerFunc(st.handleCreate))
		}
		if err := srv.Start(root.HealthCheck.Address); err != nil {
			// The pipeline matters more than its health endpoint: go on.
			logger.Error("health and metrics endpoints are not served", "error", err)
		} else {
			defer func() {
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Close(sctx)
			}()
		}
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	sigDone := make(chan struct{})
	defer close(sigDone)
	go func() {
		select {
		case sig := <-sigs:
			logger.Info("signal received: stopping (send again to exit at once)", "signal", sig.String())
			stop()
		case <-sigDone:
			return
		}
		select {
		case <-sigs:
			logger.Error("second signal: exiting without draining")
			os.Exit(ExitFailure)
		case <-sigDone:
		}
	}()

	if showProgress(f.progress, stderr) {
		progDone := make(chan struct{})
		progExit := make(chan struct{})
		go func() {
			defer close(progExit)
			progressLoop(p, stderr, progDone)
		}()
		defer func() { close(progDone); <-progExit }()
	}

	var fatal error
	var coordWG sync.WaitGroup
	coordCtx, stopCoords := context.WithCancel(context.Background())
	if st != nil {
		var once sync.Once
		st.run(coordCtx, &coordWG, func(err error) {
			once.Do(func() {
				fatal = err
				logger.Error("stopping the pipeline", "error", err)
				stop()
			})
		})
	}
	logger.Info("starting", "config", path, "streams", len(p.Streams))
	runErr := p.Run(runCtx)
	stopCoords()
	coordWG.Wait()
	if err := errors.Join(fatal, runErr); err != nil {
		return withCode(ExitFailure, err)
	}
	return nil
}

func newLogger(cfg config.Logging, stderr io.Writer) (*slog.Logger, func(), error) {
	w := stderr
	closeFn := func() {}
	if cfg.FilePath != "" {
		f, err := os.OpenFile(cfg.FilePath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("logging.file_path: %w", err)
		}
		w = f
		closeFn = func() { _ = f.Close() }
	}
	var level slog.Level
	switch strings.ToLower(cfg.Level) {
	case "debug":
		level = slog.LevelDebug
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), closeFn, nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), closeFn, nil
}

func showProgress(mode string, w io.Writer) bool {
	switch mode {
	case "always":
		return true
	case "never":
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressLoop prints records, MB/s and percent done of bounded inputs.
func progressLoop(p *engine.Pipeline, w io.Writer, done <-chan struct{}) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	start := time.Now()
	printed := false
	for {
		select {
		case <-done:
			if printed {
				fmt.Fprintln(w)
			}
			return
		case <-t.C:
		}
		var records, bytes, total int64
		for _, s := range p.Streams {
			r, d, tot := s.Progress()
			records += r
			bytes += d
			total += tot
		}
		secs := time.Since(start).Seconds()
		line := fmt.Sprintf("\r%d records  %.1f MB/s", records, float64(bytes)/1e6/secs)
		if total > 0 {
			line += fmt.Sprintf("  %.1f%%", 100*float64(bytes)/float64(total))
		}
		fmt.Fprint(w, line+"   ")
		printed = true
	}
}
