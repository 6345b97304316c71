package sfu

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/cau-project/cau/internal/cputime"
)

// The floor: what a bare Go sender spends per datagram in the shape the bridge forwards
// (1,200-byte datagrams over loopback, a burst of one datagram per subscriber for each
// incoming packet, 240 bursts a second: 2 Mbps video). The bridge's CPU per forwarded
// packet is read against it, measured in the same run (make bench, make bench-load), so
// that a shared, loaded machine affects both alike.
//
// Only the sending thread's CPU is counted (getrusage RUSAGE_THREAD), like a server
// process whose subscribers are elsewhere; on loopback it includes the kernel's delivery
// into the receivers' sockets, which a server pays too.
const (
	floorDatagram = 1200
	floorBursts   = 240 // per second
)

// floorFanouts are the subscriber counts measured; CAU_BENCH_FANOUT="50,150" overrides.
func floorFanouts() []int {
	v := os.Getenv("CAU_BENCH_FANOUT")
	if v == "" {
		return []int{50, 150, 300}
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

// BenchmarkFloor: one op is one burst. Modes: sendto (one system call per datagram, as
// the bridge sent before udpbatch), sendto+srtp (plus AES-128-GCM as SRTP's AEAD profile
// does), sendmmsg+srtp (batches of 64, as udpbatch sends). Reports cpu-µs/pkt.
func BenchmarkFloor(b *testing.B) {
	for _, n := range floorFanouts() {
		for _, mode := range []string{"sendto", "sendto+srtp", "sendmmsg+srtp"} {
			b.Run(fmt.Sprintf("fanout=%d/%s", n, mode), func(b *testing.B) { benchFloor(b, n, mode) })
		}
	}
}

func benchFloor(b *testing.B, fanout int, mode string) {
	loop := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	tx, err := net.ListenUDP("udp4", loop)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Close()
	_ = tx.SetWriteBuffer(4 << 20)
	dests := make([]netip.AddrPort, fanout)
	for i := range dests {
		rx, err := net.ListenUDP("udp4", loop)
		if err != nil {
			b.Fatal(err)
		}
		defer rx.Close()
		_ = rx.SetReadBuffer(1 << 20)
		dests[i] = rx.LocalAddr().(*net.UDPAddr).AddrPort()
		go func() { // a receiver that reads and discards, on its own goroutine
			buf := make([]byte, 2048)
			for {
				if _, err := rx.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	block, _ := aes.NewCipher(make([]byte, 16))
	aead, _ := cipher.NewGCM(block)
	nonce := make([]byte, aead.NonceSize())
	// One buffer per subscriber, as the bridge has one encrypted packet per subscriber.
	bufs := make([][]byte, fanout)
	for i := range bufs {
		bufs[i] = make([]byte, floorDatagram+aead.Overhead())
	}
	plain := make([]byte, floorDatagram-12-aead.Overhead())
	pc := ipv4.NewPacketConn(tx)
	msgs := make([]ipv4.Message, fanout)
	addrs := make([]net.UDPAddr, fanout)
	for i := range msgs {
		addrs[i] = *net.UDPAddrFromAddrPort(dests[i])
		msgs[i].Addr = &addrs[i]
		msgs[i].Buffers = [][]byte{nil}
	}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	interval := time.Second / floorBursts
	next := time.Now()
	b.ResetTimer()
	cpu0 := cputime.Thread()
	for i := 0; i < b.N; i++ {
		for j := range dests {
			p := bufs[j][:floorDatagram]
			if mode != "sendto" {
				binary.BigEndian.PutUint32(nonce, uint32(i))
				binary.BigEndian.PutUint32(p[8:12], uint32(j)) // the SSRC, in the header
				p = aead.Seal(bufs[j][:12], nonce, plain, bufs[j][:12])
			}
			if mode == "sendmmsg+srtp" {
				msgs[j].Buffers[0] = p
				continue
			}
			if _, err := tx.WriteToUDPAddrPort(p, dests[j]); err != nil {
				b.Fatal(err)
			}
		}
		if mode == "sendmmsg+srtp" {
			for m := msgs; len(m) > 0; {
				k := min(len(m), 64)
				sent, err := pc.WriteBatch(m[:k], 0)
				if err != nil {
					b.Fatal(err)
				}
				m = m[sent:]
			}
		}
		next = next.Add(interval)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		} else {
			next = time.Now()
		}
	}
	cpu := cputime.Thread() - cpu0
	b.StopTimer()
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*fanout), "cpu-µs/pkt")
}
