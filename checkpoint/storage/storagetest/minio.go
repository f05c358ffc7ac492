package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// MinIO is a private MinIO server that one test owns and may stop and
// restart (outage tests), unlike the shared server of S3FromEnv, which tests
// of other packages use at the same time. It keeps its data dir, port and
// credentials across restarts, and is killed at the end of the test.
type MinIO struct {
	Env  S3Env // its address, credentials and bucket
	bin  string
	args []string
	env  []string
	log  string

	// cmd and done belong to the test goroutine; done is closed by the
	// goroutine that waits for cmd.
	cmd  *exec.Cmd
	done chan struct{}
}

// StartMinIO starts a private MinIO server for this test, from the binary
// scripts/minio.sh installed (WEIR_MINIO_BIN), on a free loopback port with
// a temp data dir and random credentials, and waits until it is live. It
// skips the test when WEIR_MINIO_BIN is unset.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	bin := os.Getenv("WEIR_MINIO_BIN")
	if bin == "" {
		t.Skip("WEIR_MINIO_BIN is unset: run `make test` (or scripts/test.sh, or `scripts/minio.sh go test ...`), " +
			"which installs MinIO and exports it")
	}
	dir := t.TempDir()
	m := &MinIO{bin: bin, log: filepath.Join(dir, "minio.log")}
	m.Env = S3Env{AccessKey: randHex(10), SecretKey: randHex(20), Bucket: "weir-test", Region: "us-east-1"}
	m.env = append(os.Environ(), "MINIO_ROOT_USER="+m.Env.AccessKey, "MINIO_ROOT_PASSWORD="+m.Env.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off")
	t.Cleanup(func() { m.kill(t) })
	for attempt := 1; ; attempt++ {
		m.Env.Endpoint = freeLoopbackAddr(t)
		m.args = []string{"server", filepath.Join(dir, "data"), "--address", m.Env.Endpoint,
			"--certs-dir", filepath.Join(dir, "certs")}
		if m.start(t) {
			return m
		}
		if attempt == 3 { // the port may have been taken meanwhile: try others
			log, _ := os.ReadFile(m.log)
			t.Fatalf("MinIO did not start; its log:\n%s", log)
		}
	}
}

// Stop kills the server (SIGKILL, as a crash) and waits until it is gone.
func (m *MinIO) Stop(t testing.TB) {
	t.Helper()
	if m.cmd == nil {
		t.Fatalf("MinIO at %s is not running", m.Env.Endpoint)
	}
	m.kill(t)
}

// Start restarts a stopped server with the same data dir, port and
// credentials, and waits until it is live.
func (m *MinIO) Start(t testing.TB) {
	t.Helper()
	if m.cmd != nil {
		t.Fatalf("MinIO at %s is already running", m.Env.Endpoint)
	}
	if !m.start(t) {
		log, _ := os.ReadFile(m.log)
		t.Fatalf("MinIO did not restart at %s; its log:\n%s", m.Env.Endpoint, log)
	}
}

// start runs the server and reports whether it became live within a minute
// (false when it exited first).
func (m *MinIO) start(t testing.TB) bool {
	t.Helper()
	logf, err := os.OpenFile(m.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(m.bin, m.args...)
	cmd.Env = m.env
	cmd.Stdout, cmd.Stderr = logf, logf
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start MinIO: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	m.cmd, m.done = cmd, done

	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	url := "http://" + m.Env.Endpoint + "/minio/health/live"
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			m.cmd, m.done = nil, nil
			return false
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		cancel()
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	m.kill(t)
	return false
}

// kill stops the server if it runs and waits for it.
func (m *MinIO) kill(t testing.TB) {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	select {
	case <-m.done:
	case <-time.After(30 * time.Second):
		t.Errorf("MinIO (pid %d) did not exit within 30s of SIGKILL", m.cmd.Process.Pid)
	}
	m.cmd, m.done = nil, nil
}

// freeLoopbackAddr returns a 127.0.0.1 address with a port that was free a
// moment ago.
func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToLower(hex.EncodeToString(b))
}
