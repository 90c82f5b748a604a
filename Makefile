# offloadd — see README.md. Every target works on a fresh clone.
GO        ?= go
BIN       := bin
RUN_DIR   := $(CURDIR)/.run
PKGS      := ./...

.PHONY: all build run test test-race test-unit test-kernel bench crashcheck crashcheck-disk-full lint proto clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/offloadd ./cmd/offloadctl

## run: start the daemon on the emulated ConnectX-6 Dx, apply the demo tenant, show placements, keep serving.
run: build
	RUN_DIR=$(RUN_DIR) BIN=$(BIN) hack/run.sh

## test: lint, then every test (privileged ones run when root, skip otherwise).
test: lint
	$(GO) test -count=1 $(PKGS)

## test-race: every test under the race detector (CI runs it after make test).
test-race:
	$(GO) test -race -count=1 $(PKGS)

## test-kernel: the real-kernel tier in QEMU (installs what it needs on first use).
test-kernel:
	hack/kernel-vm/test.sh

## bench: performance figures as ratios against reference runs (see docs/benchmarks.md).
bench:
	hack/bench.sh

## crashcheck: SIGKILL the real daemon under load, restart, check no acknowledged change is lost (see docs/reliability.md).
CRASHCHECK_FLAGS ?= --rounds 50 --clients 4 --batch 8
crashcheck:
	$(GO) run ./hack/crashcheck $(CRASHCHECK_FLAGS)

## crashcheck-disk-full: the same with the state directory on a small tmpfs (root).
crashcheck-disk-full:
	$(GO) run ./hack/crashcheck $(CRASHCHECK_FLAGS) --disk-full 128k --ids 1000

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## proto: regenerate the committed gRPC code from pinned generators.
proto:
	hack/proto.sh

clean:
	rm -rf $(BIN) $(RUN_DIR)
