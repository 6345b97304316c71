package udpbatch

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cau-project/cau/internal/cputime"
)

// BenchmarkFanOut sends through a Conn in the bridge's shape (1,200-byte datagrams, one
// per subscriber for each incoming packet, 240 bursts a second, the burst split between
// the reader and a fan-out worker as sfu/fanout.go does) and reports the whole process's
// CPU per datagram. The receivers run in a child process (this test binary again), so
// that their reads do not count: what is left is the batching, the system calls and the
// Go runtime's scheduling around them, the part of the bridge's cost that udpbatch owns.
// CAU_BENCH_FANOUT (150) sets the subscribers.
func BenchmarkFanOut(b *testing.B) {
	n := 150
	if v := os.Getenv("CAU_BENCH_FANOUT"); v != "" {
		_, _ = fmt.Sscan(v, &n)
	}
	dests := startReceivers(b, n)
	g := &Group{}
	c := g.New(listen(b))
	defer c.Close()
	p := make([]byte, 1200)
	work := make(chan []netip.AddrPort, 1)
	var wg sync.WaitGroup
	go func() {
		for ds := range work {
			for _, d := range ds {
				_, _ = c.WriteToAddrPort(p, d)
			}
			wg.Done()
		}
	}()
	defer close(work)
	half := dests[len(dests)/2:]
	interval := time.Second / 240
	next := time.Now()
	b.ResetTimer()
	cpu0 := cputime.Process()
	for i := 0; i < b.N; i++ {
		g.Hold()
		wg.Add(1)
		work <- half
		for _, d := range dests[:len(dests)/2] {
			_, _ = c.WriteToAddrPort(p, d)
		}
		wg.Wait()
		g.Release()
		next = next.Add(interval)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		} else {
			next = time.Now()
		}
	}
	cpu := cputime.Process() - cpu0
	b.StopTimer()
	st := c.Stats()
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*n), "cpu-µs/pkt")
	if st.Batches > 0 {
		b.ReportMetric(float64(st.Datagrams)/float64(st.Batches), "pkts/batch")
	}
}

// receiversEnv, set to a count, makes the test binary BenchmarkFanOut's receiver child.
const receiversEnv = "UDPBATCH_RECEIVERS"

// startReceivers runs n reading sockets in a child process and returns their addresses.
func startReceivers(b *testing.B, n int) []netip.AddrPort {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", receiversEnv, n))
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = stdin.Close(); _ = cmd.Wait() })
	var dests []netip.AddrPort
	sc := bufio.NewScanner(out)
	for len(dests) < n && sc.Scan() {
		if a, err := netip.ParseAddrPort(strings.TrimSpace(sc.Text())); err == nil {
			dests = append(dests, a)
		}
	}
	if len(dests) < n {
		b.Fatalf("child gave %d receivers of %d", len(dests), n)
	}
	return dests
}

// receiversChild is BenchmarkFanOut's child (see TestMain): it reads and discards on n
// sockets, printing their addresses, until its standard input closes.
func receiversChild(n int) {
	for i := 0; i < n; i++ {
		rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		_ = rx.SetReadBuffer(1 << 20)
		fmt.Println(rx.LocalAddr().String())
		go func() {
			buf := make([]byte, 2048)
			for {
				if _, err := rx.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
	os.Exit(0)
}
