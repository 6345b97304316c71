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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cau-project/cau/internal/testutil"
)

// StartRedis starts a throw-away redis-server on a free loopback port (6390 and up),
// with persistence off and its pidfile, log and working directory in t.TempDir(), and
// returns its address. t.Cleanup stops it by the pid in the pidfile. If redis-server
// is not installed the test is skipped, except under CI=true, where it fails: CI must
// run the Redis tests.
func StartRedis(t testing.TB) string {
	t.Helper()
	return startServer(t, "--save", "", "--appendonly", "no").Addr
}

// StartDurableRedis starts a redis-server as a deployment should run it
// (docs/deployment.md): every write in the append-only file before it is acknowledged
// (appendfsync always), so that a kill -9 loses nothing acknowledged. The test can kill
// it and start it again on the same port and data.
func StartDurableRedis(t testing.TB) *RedisServer {
	t.Helper()
	return startServer(t, "--save", "", "--appendonly", "yes", "--appendfsync", "always")
}

// StartRedisWith starts a throw-away redis-server as StartRedis does, with args added to
// (and overriding) its command line, e.g. "--bind", "127.0.0.1", "127.0.0.2".
func StartRedisWith(t testing.TB, args ...string) *RedisServer {
	t.Helper()
	return startServer(t, append([]string{"--save", "", "--appendonly", "no"}, args...)...)
}

// RedisServer is one redis-server a test started, on a fixed port and data directory.
type RedisServer struct {
	Addr string

	t    testing.TB
	bin  string
	dir  string
	port int
	args []string
	conf func(port int) string // the configuration file's content; nil: none

	mu   sync.Mutex // guards proc
	proc *redisProc // nil while killed
}

type redisProc struct {
	cmd     *exec.Cmd
	exited  chan error
	pidfile string
}

func startServer(t testing.TB, args ...string) *RedisServer {
	t.Helper()
	return startServerConf(t, nil, args...)
}

// startServerConf is startServer with a configuration file first on the command line,
// written from conf(port) (nil: none); a sentinel needs one it can rewrite.
func startServerConf(t testing.TB, conf func(port int) string, args ...string) *RedisServer {
	t.Helper()
	bin := testutil.Tool(t, "redis-server", "redis-server")
	dir := t.TempDir()
	first := 6390 + os.Getpid()%500 // spread concurrent test binaries apart
	for port := first; port < first+50; port++ {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue // taken
		}
		l.Close()
		r := &RedisServer{Addr: addr, t: t, bin: bin, dir: dir, port: port, args: args, conf: conf}
		if err := r.Start(); err != nil {
			t.Logf("redis-server on port %d: %v; trying the next port", port, err)
			continue
		}
		t.Cleanup(r.stop)
		return r
	}
	t.Fatalf("no free port for redis-server in %d–%d", first, first+49)
	return nil
}

// Start runs the server (again, after Kill) on its port and data directory and waits
// until it answers PING, or fails (port lost to a race, bad flags) and says why.
func (r *RedisServer) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil {
		return errors.New("redis-server already running")
	}
	pidfile := filepath.Join(r.dir, fmt.Sprintf("redis-%d.pid", r.port))
	logfile := filepath.Join(r.dir, fmt.Sprintf("redis-%d.log", r.port))
	var args []string
	if r.conf != nil {
		file := filepath.Join(r.dir, fmt.Sprintf("redis-%d.conf", r.port))
		if err := os.WriteFile(file, []byte(r.conf(r.port)), 0o600); err != nil {
			return err
		}
		args = append(args, file)
	}
	args = append(args, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--pidfile", pidfile, "--logfile", logfile, "--dir", r.dir, "--daemonize", "no")
	args = append(args, r.args...)
	cmd := exec.Command(r.bin, args...)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logfile)
			return fmt.Errorf("exited (%v): %s", err, lastLines(string(log), 5))
		default:
		}
		if ping(r.Addr) == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			waitExit(exited)
			return errors.New("no PONG within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.proc = &redisProc{cmd: cmd, exited: exited, pidfile: pidfile}
	return nil
}

// Kill stops the server with SIGKILL, as a crash would: nothing is saved on the way out.
func (r *RedisServer) Kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		return
	}
	_ = syscall.Kill(r.proc.pid(), syscall.SIGKILL)
	waitExit(r.proc.exited)
	r.proc = nil
}

// stop ends the server at the end of the test.
func (r *RedisServer) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		return
	}
	pid := r.proc.pid()
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case err := <-r.proc.exited:
		_ = err // stopped by us: a signal exit is expected
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		waitExit(r.proc.exited)
	}
	r.proc = nil
}

// pid is the server's pid from its pidfile (the one it wrote), else the child's.
func (p *redisProc) pid() int {
	if data, err := os.ReadFile(p.pidfile); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			return n
		}
	}
	return p.cmd.Process.Pid
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

// Sentinel is a Redis master with one replica, watched by one sentinel that promotes the
// replica when the master is down for a second (the deployment docs/deployment.md
// describes, with one sentinel where production has three).
type Sentinel struct {
	Master, Replica *RedisServer
	// Addr is the sentinel's address; MasterName the name it knows the master by.
	Addr, MasterName string
}

// URL is the redis_url that reaches the master through the sentinel.
func (s *Sentinel) URL() string { return "redis://" + s.Addr + "?master_name=" + s.MasterName }

// StartSentinel starts a durable master, its replica and a sentinel.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	master := StartDurableRedis(t)
	_, mport, err := net.SplitHostPort(master.Addr)
	if err != nil {
		t.Fatal(err)
	}
	replica := startServer(t, "--save", "", "--appendonly", "yes", "--appendfsync", "always",
		"--replicaof", "127.0.0.1", mport)
	s := &Sentinel{Master: master, Replica: replica, MasterName: "cau"}
	sentinel := startServerConf(t, func(port int) string {
		return fmt.Sprintf("port %d\nsentinel monitor cau 127.0.0.1 %s 1\n"+
			"sentinel down-after-milliseconds cau 1000\nsentinel failover-timeout cau 5000\n", port, mport)
	}, "--sentinel")
	s.Addr = sentinel.Addr
	return s
}
