# zkprom — see README.md. `make demo` and `make test` install what they need.
GO        ?= go
PKG       := github.com/prometheus/common/version
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH    ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X $(PKG).Version=$(VERSION) -X $(PKG).Revision=$(REVISION) -X $(PKG).Branch=$(BRANCH) \
             -X $(PKG).BuildUser=$(shell id -un 2>/dev/null)@$(shell uname -n 2>/dev/null) -X $(PKG).BuildDate=$(shell date -u +%Y%m%d-%H:%M:%S)

.PHONY: all build package tarball deps test unit bench fuzz demo docs fmt vet clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/zkprom ./cmd/zkprom

# dist/zkprom_<version>_<arch>.deb (dpkg-deb) and the release tarball
# dist/zkprom-<version>.linux-<arch>.tar.gz: docs/install.md.
# Their files and changelog carry the date of the last commit.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
MKPKG := SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(GO) run ./internal/packaging/mkpkg -zkprom bin/zkprom -version $(VERSION) -out dist
package: build
	$(MKPKG) deb

tarball: build
	$(MKPKG) tarball

# System packages (ZooKeeper, Prometheus, a JDK, ...), Prometheus 3.x and Go
# modules.
deps:
	GO=$(GO) scripts/install-deps.sh
	$(GO) mod download

# Unit and integration tests against a real ZooKeeper and a real Prometheus.
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 40m ./...

# Unit tests only (no ZooKeeper, no Prometheus).
unit:
	$(GO) test -count=1 -short ./...

# Benchmarks: long runs and scale tests, with baselines side by side.
bench: deps build fuzz
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./...

# Every fuzz target for FUZZTIME each (the seeds alone run in make test).
FUZZTIME ?= 1m
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

# A local ZooKeeper ensemble, Prometheus and zkprom wired together.
# Built, then run in place of the shell: Ctrl-C reaches it, it stops
# everything and exits 0, and make says nothing more.
# It runs Debian's Prometheus only: the 3.x build is left to make test.
demo: build
	GO=$(GO) scripts/install-deps.sh --no-prometheus3
	$(GO) build -o bin/demo ./demo
	exec bin/demo -zkprom bin/zkprom

# Regenerate the generated documentation (flags, metrics, labels).
docs:
	$(GO) test -short ./cmd/zkprom ./internal/discovery ./internal/exporter -run '^TestDocumentation' -update

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin dist
