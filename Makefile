# weir — build, test, benchmark.
#
#   make test    everything CI runs: vet, staticcheck, unit + integration tests
#                (race detector on engine, state, checkpoint, txn), S3 suites
#                against a real MinIO server that this target installs and starts.
#   make build   the weir binary in bin/weir
#   make docs    regenerate docs/components.md from the component specs
#   make bench   the benchmark suite (bench/README.md)

GO            ?= go
GOBIN         ?= $(shell $(GO) env GOPATH)/bin
STATICCHECK_VERSION ?= v0.8.2
RACE_PKGS     := ./engine/... ./state/... ./checkpoint/... ./txn/...

.PHONY: all build test vet staticcheck unit docs bench clean

all: build

build:
	$(GO) build -o bin/weir ./cmd/weir

vet:
	$(GO) vet ./...

staticcheck:
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(GOBIN)/staticcheck ./...

unit:
	scripts/test.sh

test: vet staticcheck unit

docs:
	UPDATE_DOCS=1 $(GO) test -count=1 -run TestDocsUpToDate ./internal/builtin/

# BENCH_FLAGS go to the benchmark driver, e.g. make bench BENCH_FLAGS=-big
bench:
	bench/run.sh $(BENCH_FLAGS)

clean:
	rm -rf bin
