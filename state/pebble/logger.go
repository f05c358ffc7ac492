package pebble

import (
	"fmt"
	"log/slog"
)

// slogLogger passes Pebble's log to slog: info as debug (Pebble is chatty
// about flushes and compactions), errors as errors.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Infof(format string, args ...any) {
	s.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (s slogLogger) Errorf(format string, args ...any) {
	s.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf logs and panics: Pebble calls it on unrecoverable corruption.
func (s slogLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.l.Error(msg, "component", "pebble")
	panic("state/pebble: " + msg)
}
