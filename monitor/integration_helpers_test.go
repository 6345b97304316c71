package monitor_test

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/internal/testkit"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/rooms"
)

// Helpers of the integration tests (package monitor_test: they start the whole app,
// which imports monitor).

const deployDir = "../deploy"

func testLogger() *slog.Logger {
	if os.Getenv("CAU_TEST_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testTree: central ─ p1 ─ d1 ─ c1.
func testTree(t testing.TB) *rooms.Tree {
	t.Helper()
	return testkit.Tree(t,
		rooms.Site{ID: "central", Name: "Trung ương", Level: rooms.LevelCentral},
		rooms.Site{ID: "p1", Name: "Tỉnh 1", Level: rooms.LevelProvince, Parent: "central"},
		rooms.Site{ID: "d1", Name: "Huyện 1", Level: rooms.LevelDistrict, Parent: "p1"},
		rooms.Site{ID: "c1", Name: "Xã 1", Level: rooms.LevelCommune, Parent: "d1"})
}

// eventually is testutil.Eventually: poll until cond returns "" (the reason otherwise).
func eventually(t testing.TB, timeout time.Duration, cond func() string) {
	t.Helper()
	testutil.Eventually(t, timeout, cond)
}

// exposition is a /metrics page, one sample per line.
type exposition []string

func scrape(t testing.TB, base string) exposition {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	return strings.Split(string(b), "\n")
}

// get returns the value of the one sample of name whose labels contain every matcher
// (`site="c1"`), failing the test if there is none.
func (e exposition) get(t testing.TB, name string, matchers ...string) float64 {
	t.Helper()
next:
	for _, line := range e {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		i := strings.LastIndexByte(rest, '}')
		if i < 0 {
			continue
		}
		for _, m := range matchers {
			if !strings.Contains(rest[:i], m) {
				continue next
			}
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest[i+1:]), 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		return v
	}
	t.Fatalf("no sample %s{%s} in /metrics", name, strings.Join(matchers, ","))
	return 0
}
