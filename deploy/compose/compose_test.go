// Package compose_test checks the compose files in this folder without Docker: it reads
// a file, starts each service's command as a process on this machine (the services use
// host networking, so the addresses are the same), and drives them as a user would.
package compose_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/protocol"
)

// service is what this test needs of a compose service.
type service struct {
	Image       string            `yaml:"image"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   []string          `yaml:"depends_on"`
}

// readCompose reads a compose file's services.
func readCompose(t *testing.T, path string) map[string]service {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]service `yaml:"services"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f.Services
}

// startOrder lists the services so that each comes after what it depends on.
func startOrder(t *testing.T, svcs map[string]service) []string {
	t.Helper()
	var order []string
	done := map[string]bool{}
	var visit func(name string, depth int)
	visit = func(name string, depth int) {
		if done[name] {
			return
		}
		if _, ok := svcs[name]; !ok || depth > len(svcs) {
			t.Fatalf("service %q: unknown, or a dependency cycle", name)
		}
		for _, d := range svcs[name].DependsOn {
			visit(d, depth+1)
		}
		done[name] = true
		order = append(order, name)
	}
	names := make([]string, 0, len(svcs))
	for n := range svcs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		visit(n, 0)
	}
	return order
}

// run starts one service as a process: cau:dev services run the cau binary, redis the
// redis-server binary, haproxy the haproxy binary; a volume's container path, wherever it
// appears in the command or the environment, becomes the host path.
func run(t *testing.T, dir, name string, s service, data string) *exec.Cmd {
	t.Helper()
	args := s.Command
	env := os.Environ()
	for k, v := range s.Environment {
		env = append(env, k+"="+v)
	}
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 {
			t.Fatalf("%s: volume %q", name, v)
		}
		host, err := filepath.Abs(filepath.Join(dir, parts[0]))
		if err != nil {
			t.Fatal(err)
		}
		for i := range args {
			args[i] = strings.ReplaceAll(args[i], parts[1], host)
		}
		for i := range env {
			env[i] = strings.ReplaceAll(env[i], parts[1], host)
		}
	}
	var bin string
	switch {
	case s.Image == "cau:dev":
		bin = testutil.BuildCau(t)
	case strings.HasPrefix(s.Image, "redis:") && len(args) > 0 && args[0] == "redis-server":
		bin = testutil.Tool(t, "redis-server", "redis-server")
		args = append(args[1:], "--dir", data)
	case strings.HasPrefix(s.Image, "haproxy:") && len(args) > 0 && args[0] == "haproxy":
		bin = testutil.Tool(t, "haproxy", "haproxy")
		args = args[1:]
	default:
		t.Fatalf("service %s: image %s is not one this test can run", name, s.Image)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := testutil.StartProcess(t, cmd, 10*time.Second); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Logf("started %s: %s %s", name, filepath.Base(bin), strings.Join(args, " "))
	return cmd
}

// cau runs a cau command with env and returns what it printed.
func cau(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	cmd := exec.Command(testutil.BuildCau(t), args...)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("cau %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return strings.TrimSpace(string(out))
}

// TestHAComposeServesOneMeetingThroughEitherNode runs ha.yaml (a durable Redis, two
// `cau signal` nodes, HAProxy in front of them, two bridges registered with both) and
// does what its header tells a user to: books a meeting through the balancer with `cau
// meetings schedule`, mints join tokens with `cau token`, and joins two communes' rooms,
// one through the balancer and one through a node. Each receives the other's audio and
// video. Then the node that owns the meeting is killed (SIGKILL): both rooms come back
// through the balancer alone, resume on the other node with their media connections
// kept, and receive each other again.
func TestHAComposeServesOneMeetingThroughEitherNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	svcs := readCompose(t, "ha.yaml")
	data := t.TempDir()
	procs := map[string]*exec.Cmd{}
	for _, name := range startOrder(t, svcs) {
		s := svcs[name]
		procs[name] = run(t, ".", name, s, data)
		if s.Image == "cau:dev" && len(s.Command) > 0 && s.Command[0] == "signal" {
			waitReady(t, name, "http://"+flagValue(t, s.Command, "--http"))
		}
	}
	env := svcs["signal-1"].Environment
	nodes := map[string]string{}
	for _, n := range []string{"signal-1", "signal-2"} {
		nodes[n] = "http://" + flagValue(t, svcs[n].Command, "--http")
	}
	balancer := "http://" + balancerAddr(t, "haproxy.cfg")
	waitReady(t, "balancer", balancer)
	cau(t, env, "meetings", "schedule", "--url", balancer, "--id", "giao-ban-ha", "--title", "Giao ban",
		"--start", "now", "--duration", "1h", "--select", "qnam", "--chair", "qnam")
	join := func(via, site, endpoint string) *client.Client {
		tok := cau(t, env, "token", "--meeting", "giao-ban-ha", "--site", site, "--name", site, "--role", "room", "--endpoint", endpoint)
		var c *client.Client
		testutil.Eventually(t, 60*time.Second, func() string { // the bridges register with each node
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var err error
			if c, err = client.Dial(ctx, wsURL(via), tok,
				client.Options{Loopback: true, ResumeURLs: []string{wsURL(balancer)}}); err != nil {
				return fmt.Sprintf("join %s through %s: %v", site, via, err)
			}
			return ""
		})
		t.Cleanup(c.Close)
		if err := c.Publish(context.Background()); err != nil {
			t.Fatalf("publish %s: %v", site, err)
		}
		return c
	}
	a := join(balancer, "qnam-psn-c01", "ep-c01")
	b := join(nodes["signal-2"], "qnam-psn-c02", "ep-c02")
	receiveEachOther := func(n int64) {
		for _, pair := range [][2]*client.Client{{a, b}, {b, a}} {
			rx, tx := pair[0], pair[1]
			testutil.Eventually(t, 30*time.Second, func() string {
				for _, kind := range []string{"audio", "video"} {
					if s := rx.Stream(tx.Me().Streams[protocol.SourceCamera], kind); s == nil || s.Packets.Load() < n {
						return fmt.Sprintf("%s has not received %d %s packets from %s", rx.Me().Site, n, kind, tx.Me().Site)
					}
				}
				return ""
			})
		}
	}
	receiveEachOther(30)

	owner := ""
	for name, url := range nodes {
		if testutil.Unlabelled(testutil.Scrape(t, url), "cau_meeting_owned") == "1" {
			owner = name
		}
	}
	if owner == "" {
		t.Fatal("no node owns the meeting")
	}
	received := a.Stream(b.Me().Streams[protocol.SourceCamera], "audio").Packets.Load()
	killed := time.Now()
	if err := procs[owner].Process.Kill(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() string {
		for _, c := range []*client.Client{a, b} {
			if c.Resumes() < 1 {
				return fmt.Sprintf("%s has not come back through the balancer", c.Me().Site)
			}
		}
		return ""
	})
	back := time.Since(killed)
	receiveEachOther(received + 100) // two seconds of audio more than before the kill
	for _, c := range []*client.Client{a, b} {
		if c.Adoptions() < 1 {
			t.Errorf("%s renegotiated its media after the kill, want its connections resumed as they were", c.Me().Site)
		}
	}
	for name, url := range nodes {
		if name != owner && testutil.Unlabelled(testutil.Scrape(t, url), "cau_meeting_owned") != "1" {
			t.Errorf("%s does not own the meeting after %s was killed", name, owner)
		}
	}
	t.Logf("BALANCER: %s (the owner) killed; both rooms back through HAProxy %v after, media kept", owner,
		back.Round(time.Millisecond))
}

func wsURL(base string) string { return "ws" + strings.TrimPrefix(base, "http") + "/ws" }

// waitReady waits until a node (or the balancer in front of the nodes) answers /readyz.
func waitReady(t *testing.T, name, url string) {
	t.Helper()
	testutil.Eventually(t, 60*time.Second, func() string {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return fmt.Sprintf("%s: %v", name, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Sprintf("%s /readyz: %d", name, resp.StatusCode)
		}
		return ""
	})
}

// balancerAddr reads the address HAProxy's frontend binds in its config file.
func balancerAddr(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "bind" {
			return f[1]
		}
	}
	t.Fatalf("%s binds no address", path)
	return ""
}

// flagValue returns the value after name in a command line.
func flagValue(t *testing.T, args []string, name string) string {
	t.Helper()
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	t.Fatalf("%s not in %v", name, args)
	return ""
}
