# Cầu — see README.md. Every target works on a fresh clone.
GO       ?= go
BIN      := bin/cau
PKGS     := ./...
# CI sets CI=true; the browser, Redis and WAN tests then refuse to skip.
# -p 1: the media tests measure loss and latency; on a 2-core machine packages running side
# by side would starve each other and make those figures noise.
TESTFLAGS ?= -race -count=1 -p 1 -timeout 15m

.PHONY: all build run test test-short bench fuzz vet fmt clean docker

all: build

build:
	$(GO) build -o $(BIN) ./cmd/cau

run: build
	./$(BIN) serve --dev

test: vet
	$(GO) test $(TESTFLAGS) $(PKGS)

test-short:
	$(GO) test -short -race -count=1 $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# Short fuzzing of every parser that reads bytes from the network (make fuzz FUZZTIME=5m).
FUZZTIME ?= 20s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./protocol
	$(GO) test -run '^$$' -fuzz FuzzKeyframe -fuzztime $(FUZZTIME) ./sfu

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

docker:
	docker build -f deploy/Dockerfile -t cau:dev .

clean:
	rm -rf bin
