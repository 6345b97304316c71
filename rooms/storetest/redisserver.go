package storetest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// StartRedis starts a throw-away redis-server on a free loopback port (6390 and up),
// with persistence off and its pidfile, log and working directory in t.TempDir(), and
// returns its address. t.Cleanup stops it by the pid in the pidfile. If redis-server
// is not installed the test is skipped, except under CI=true, where it fails: CI must
// run the Redis tests.
func StartRedis(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server not found and CI=true (Redis tests may not skip): %v", err)
		}
		t.Skipf("redis-server not found: %v", err)
	}
	dir := t.TempDir()
	first := 6390 + os.Getpid()%500 // spread concurrent test binaries apart
	for port := first; port < first+50; port++ {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue // taken
		}
		l.Close()
		if err := startRedis(t, bin, dir, port); err != nil {
			t.Logf("redis-server on port %d: %v; trying the next port", port, err)
			continue
		}
		return addr
	}
	t.Fatalf("no free port for redis-server in %d–%d", first, first+49)
	return ""
}

// startRedis runs one server and waits until it answers PING, or fails (port lost to
// a race, bad flags) and says why.
func startRedis(t testing.TB, bin, dir string, port int) error {
	pidfile := filepath.Join(dir, fmt.Sprintf("redis-%d.pid", port))
	logfile := filepath.Join(dir, fmt.Sprintf("redis-%d.log", port))
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no",
		"--pidfile", pidfile, "--logfile", logfile, "--dir", dir, "--daemonize", "no")
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logfile)
			return fmt.Errorf("exited (%v): %s", err, lastLines(string(log), 5))
		default:
		}
		if ping(addr) == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			waitExit(exited)
			return errors.New("no PONG within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		pid := cmd.Process.Pid
		if data, err := os.ReadFile(pidfile); err == nil {
			if p, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
				pid = p
			}
		}
		_ = syscall.Kill(pid, syscall.SIGTERM)
		select {
		case err := <-exited:
			_ = err // stopped by us: a signal exit is expected
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(pid, syscall.SIGKILL)
			waitExit(exited)
		}
	})
	return nil
}

// ping sends one inline PING and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("answer %q", line)
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

// waitExit waits for a server this helper killed; its exit status (a signal) says nothing new.
func waitExit(exited <-chan error) {
	if err := <-exited; err != nil {
		return
	}
}
