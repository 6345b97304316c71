# Cầu — see README.md. Every target works on a fresh clone.
GO       ?= go
BIN      := bin/cau
PKGS     := ./...
# CI sets CI=true; the browser, Redis and WAN tests then refuse to skip.
# -p 1: the media tests measure loss and latency; on a 2-core machine packages running side
# by side would starve each other and make those figures noise. (make test's .ci/gotest
# always runs one package at a time; it reads -p 1 as go test would and ignores it.)
TESTFLAGS ?= -race -count=1 -p 1 -timeout 15m

.PHONY: all build run test test-short tools deps lint golangci soak national bench bench-load bench-table bench-shaped fuzz vet fmt clean docker package

all: build

build:
	$(GO) build -o $(BIN) ./cmd/cau

run: build
	./$(BIN) serve --dev

# The join-time smoke, the load tester's Last-N run, the 100 SIP calls, the allocation
# checks of the pion send path, the 60-endpoint discussion and the national meeting (300
# endpoints; make national: 40 then 300) run without the race detector (its figures mean nothing
# under it, 100 calls set up at once miss their deadline under it, sync.Pool drops its
# buffers, hundreds of endpoints would take minutes).
# .ci/gotest is go test, with every test binary compiled and linked first, two at a time
# (under go test -p 1 each is built on one core between two packages' runs, the other core
# idle: 53 race links, ~190 s of the CI's race line), then run one package at a time as go
# test runs them. -vet=off: make vet has run the whole go vet, of which go test's vet is a
# subset.
GOTEST := GO=$(GO) .ci/gotest
NORACE_RUN := TestJoinTimeBound|TestSIPp100Calls|AllocatesNothing|TestDiscussionSixtyEndpoints|TestDiscussionLastN|TestNationalMeeting
NORACE_PKGS := ./loadtest ./sipgw ./sfu ./signaling
# bin/race/cau: the race-detector cau that signaling's and deploy/compose's tests run as
# processes (testutil.BuildCau), linked here once.
# GORACE atexit_sleep_ms=0: a race-detector process otherwise sleeps 1 s as it exits
# whenever goroutines are left (ThreadSanitizer's default, so that they may still report a
# race): every test binary (53 s in all), every race cau process a test stops, and every
# helper re-exec of a test binary, each in turn in the tests' cleanups (deploy/compose:
# 20 s -> 11 s). What it gives up is a race between goroutines still running after main
# has returned; the packages that start goroutines fail on any left (goleak).
RACE_ENV := GORACE='atexit_sleep_ms=0 $(GORACE)'
test: vet lint
	$(GO) build -race -o bin/race/ $(PKGS)
	CAU_TEST_RACE_CAU=$(CURDIR)/bin/race/cau $(RACE_ENV) $(GOTEST) $(TESTFLAGS) -vet=off $(PKGS)
	$(GOTEST) -count=1 -p 1 -vet=off -run '$(NORACE_RUN)' $(NORACE_PKGS)

test-short:
	$(GO) test -short -race -count=1 $(PKGS)

# bench prints the floor (a bare UDP sender in the bridge's shape, BenchmarkFloor) and the
# forwarding benchmarks side by side (the sfu package first), then the rest.
# soak repeats the recorder's load runs without the race detector, for their figures
# (make test runs them once, under it): eight recordings at once on one bridge, and the
# three-site recording for 60 s, three times each. Then the meeting soak at full length:
# 60 endpoints joining and leaving for 10 minutes (make test runs 8 for 20 s).
soak:
	$(GO) test -count=3 -p 1 -timeout 30m -run 'TestEightRecordingsKeepUp|TestRecordThreeSites' ./recorder
	CAU_SOAK_ENDPOINTS=60 CAU_SOAK_DURATION=10m $(GO) test -count=1 -p 1 -timeout 30m -run TestSoak -v ./signaling

# national: issue 10's simulated national meeting (signaling/national_test.go), 40 then 300
# real endpoints over 7 in-process bridges, without the race detector: every relay link
# carries at most VideoN + AudioN + pinned streams at both sizes (docs/cascade.md). make
# test runs the 300; CAU_NATIONAL_ENDPOINTS=n runs one size (under -race as well).
national:
	CAU_NATIONAL=1 $(GO) test -count=1 -p 1 -timeout 15m -run TestNationalMeeting -v ./signaling

bench:
	$(GO) test -run '^$$' -bench 'Floor|Forward' -benchmem ./sfu
	$(GO) test -run '^$$' -bench . -benchmem -timeout 60m $$($(GO) list $(PKGS) | grep -v '/sfu$$')

# bench-load: the server's CPU per forwarded packet (cau loadtest, 1 video publisher)
# as a ratio to the floor measured before and after it (docs/benchmarks.md).
ENDPOINTS ?= 151
DURATION ?= 30s
bench-load: build
	sfu/bench-load.sh $(ENDPOINTS) $(DURATION)

# bench-table: issue 11's whole table (1 x 50 ... 1 x 500, Gia Lai at both rates, the join
# storm) into $(TABLE_OUT); SRV_CPUS / TST_CPUS pin server and tester (sfu/bench-table.sh).
TABLE_OUT ?= bench-table
bench-table: build
	sfu/bench-table.sh $(TABLE_OUT)

# bench-shaped: a commune's endpoint behind tbf, 3 Mbit/s → 400 kbit/s → 3 Mbit/s, Chromium
# publishing simulcast, with and without adaptation: freeze time and mean resolution
# beside an unshaped endpoint's (docs/benchmarks.md). Needs root and chromium.
bench-shaped:
	CAU_BENCH_SHAPED=1 $(GO) test -count=1 -p 1 -timeout 15m -run TestShapedStepFigures -v ./app

# Short fuzzing of every parser that reads bytes from the network (make fuzz FUZZTIME=5m).
FUZZTIME ?= 20s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./protocol
	$(GO) test -run '^$$' -fuzz FuzzKeyframe -fuzztime $(FUZZTIME) ./sfu
	$(GO) test -run '^$$' -fuzz FuzzOfferChecks -fuzztime $(FUZZTIME) ./whip
	$(GO) test -run '^$$' -fuzz FuzzTrickleFragment -fuzztime $(FUZZTIME) ./whip
	$(GO) test -run '^$$' -fuzz FuzzSDP -fuzztime $(FUZZTIME) ./sipgw
	$(GO) test -run '^$$' -fuzz FuzzInvite -fuzztime $(FUZZTIME) ./sipgw
	$(GO) test -run '^$$' -fuzz FuzzOriginalSeq -fuzztime $(FUZZTIME) ./sfu/nackgen
	$(GO) test -run '^$$' -fuzz FuzzReports -fuzztime $(FUZZTIME) ./sfu/hopstats

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet $(PKGS)

# golangci-lint (config in .golangci.yml), built once into bin/tools at a pinned version.
GOLANGCI_VERSION := v2.15.0
GOLANGCI := $(shell command -v golangci-lint 2>/dev/null || echo $(CURDIR)/bin/tools/golangci-lint)
lint: golangci
	$(GOLANGCI) run ./...

golangci:
	@test -x "$(GOLANGCI)" || { echo "lint: building golangci-lint $(GOLANGCI_VERSION) into bin/tools (once)"; GOBIN=$(CURDIR)/bin/tools $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION); }

# tools: the modules, and the pinned tools that build from source: golangci-lint, and nfpm
# (go run caches the executable make package runs). deps: what the project imports from
# the modules and the standard library, compiled with and without the race detector into
# the build cache; none of the project's own packages (sipgw's cgo needs apt's
# libopus-dev). .ci/run makes both while apt installs, on two cores otherwise idle.
tools: golangci
	$(GO) mod download
	cd deploy/deb && GOARCH=$$($(GO) env GOARCH) $(GO) run $(NFPM) --version >/dev/null

deps:
	deps=$$($(GO) list -deps -test -f '{{if and (not .ForTest) (not (and .Module .Module.Main))}}{{.ImportPath}}{{end}}' $(PKGS) | grep -v '\.test$$') && \
		$(GO) build $$deps && $(GO) build -race $$deps

fmt:
	gofmt -w $$(git ls-files '*.go')

docker:
	docker build -f deploy/Dockerfile -t cau:dev .

# Debian package (deploy/deb): dist/cau_<version>_<arch>.deb, built by nfpm at a pinned
# version through `go run` (the project's go.mod does not depend on it).
NFPM       ?= github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0
DEBVERSION ?= $(shell v=$$(git describe --tags --match 'v[0-9]*' 2>/dev/null | sed 's/^v//'); \
	[ -n "$$v" ] && echo "$$v" || echo "0.0.0~git$$(git log -1 --format=%cd --date=format:%Y%m%d%H%M 2>/dev/null || echo 0).$$(git rev-parse --short HEAD 2>/dev/null || echo local)")
# cgo: the SIP gateway transcodes room audio with libopus and libspandsp (G.722); a build
# without cgo would carry video only. nfpm.yaml depends on their runtime packages.
package:
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(DEBVERSION)" -o $(BIN) ./cmd/cau
	mkdir -p dist
	cd deploy/deb && VERSION='$(DEBVERSION)' GOARCH=$$($(GO) env GOARCH) $(GO) run $(NFPM) package \
		--config nfpm.yaml --packager deb --target ../../dist/
	@ls -l dist/*.deb

clean:
	rm -rf bin dist
