# Lintel — `make` (or `make help`) lists the targets.

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GO      ?= go
LDFLAGS := -s -w -X main.version=$(VERSION)
PKGS    := ./...
FUZZTIME ?= 30s
# -race needs cgo and a 64-bit host; elsewhere tests run without it.
RACE := $(shell case "$$(go env GOARCH)" in (amd64|arm64) echo -race;; esac)

.DEFAULT_GOAL := help
.PHONY: help build cross test vet fmtcheck lint bench fuzz soak demo package clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  \033[1m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/lintel for this machine (static, CGO off)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/lintel ./cmd/lintel

cross: ## build dist/lintel-linux-arm64 and dist/lintel-linux-armv7 (CGO off)
	@mkdir -p dist
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o dist/lintel-linux-arm64 ./cmd/lintel
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o dist/lintel-linux-armv7 ./cmd/lintel
	@ls -l dist/

vet: ## go vet (also the faulttest build the reliability suite uses)
	$(GO) vet $(PKGS)
	$(GO) vet -tags faulttest ./edge/ ./cmd/lintel/

fmtcheck: ## fail if any file is not gofmt'ed
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './dist/*' -not -path './.git/*')); \
	if [ -n "$$out" ]; then echo "not gofmt'ed:"; echo "$$out"; exit 1; fi

lint: fmtcheck vet ## gofmt + go vet (+ staticcheck when installed)
	@if command -v staticcheck >/dev/null; then staticcheck $(PKGS); else echo "staticcheck not installed; skipped (go install honnef.co/go/tools/cmd/staticcheck@latest)"; fi

test: fmtcheck vet ## vet, gofmt and every test with the race detector (what CI runs)
	$(GO) test $(RACE) -count=1 -timeout 14m $(PKGS)

bench: ## run the benchmarks behind docs/performance.md (about 15 minutes; run on a quiet machine)
	$(GO) test -p 1 -timeout 30m -run '^$$' -bench . -benchtime 2s ./edge/store/ ./edge/event/
	$(GO) test -p 1 -timeout 30m -run '^$$' -bench . -benchtime 1x ./drivers/modbus/ ./sync/city/
	$(GO) test -p 1 -timeout 30m -run '^$$' -bench . -benchtime 3x ./edge/rules/
	$(GO) test -p 1 -timeout 30m -run '^$$' -bench . -benchmem -benchtime 1s ./drivers/serial/ ./drivers/rtsp/... ./edge/status/ ./cmd/lintel/

fuzz: ## run every fuzz target for FUZZTIME each (default 30s)
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

soak: ## long reliability runs (1,000 kill -9 cycles, a 24 h outage's backlog, 60 damaged journals and 20 full disks under the daemon, journal damage at every byte): about 2.6 h
	LINTEL_SOAK=1 $(GO) test -count=1 -timeout 5h -v -run '^TestReliability' ./cmd/lintel/
	LINTEL_SOAK=1 $(GO) test -count=1 -timeout 2h -v -run '^TestJournalDamageAnywhere$$' ./edge/store/
	LINTEL_SOAK=1 $(GO) test -count=1 -timeout 1h -v -run '^TestMemoryBound' ./drivers/rtsp/

demo: ## run the gateway on a simulated compound (status page on http://127.0.0.1:8080)
	$(GO) run ./cmd/lintel demo $(DEMOFLAGS)

clean: ## remove build output
	rm -rf bin dist

include packaging/package.mk
