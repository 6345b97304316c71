// Package profiling serves Go's runtime profiles (CPU, heap, allocations, goroutines,
// mutex contention, blocking, execution trace) under /debug/pprof/ for `go tool pprof`.
// It belongs on an operations port (a bridge's --http, or `cau serve --debug-http` on
// loopback), never on the public one: profiles reveal internals and a CPU profile costs.
package profiling

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"sync"
	"time"
)

var enableOnce sync.Once

// Register adds the /debug/pprof/ handlers to mux and turns on sampling of mutex
// contention (1 event in 100) and blocking (events over 10 µs), which are off by
// default: cheap enough to leave on while a port serves profiles.
func Register(mux *http.ServeMux) {
	enableOnce.Do(func() {
		runtime.SetMutexProfileFraction(100)
		runtime.SetBlockProfileRate(int((10 * time.Microsecond).Nanoseconds()))
	})
	mux.HandleFunc("GET /debug/pprof/", pprof.Index) // heap, allocs, goroutine, mutex, block, threadcreate
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile) // CPU, ?seconds=30
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}

// Serve listens on addr and serves only the profiles. It returns the server and the
// address it listens on (addr may name port 0).
func Serve(addr string, log *slog.Logger) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("profiling: %w", err)
	}
	mux := http.NewServeMux()
	Register(mux)
	// No write timeout: a CPU profile or trace streams for as long as it was asked.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Error("profiling http", "err", err)
		}
	}()
	log.Info("profiles", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	return srv, ln.Addr().String(), nil
}
