# natsmesh: the usual entry points. Needs only Go (and git for the version).

VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build test lint bench bench-deps demo fuzz chaos soak mutate clean

all: build

build:
	go build -ldflags "$(LDFLAGS)" -o bin/natsmesh ./cmd/natsmesh

# The race detector needs cgo (a C compiler); without one, say so and test
# without it rather than fail.
RACE := $(shell [ "$$(go env CGO_ENABLED)" = 1 ] && echo -race)

test:
	go vet ./...
	@[ -n "$(RACE)" ] || echo "note: no C compiler (cgo off), so tests run without -race; install gcc for it"
	go test $(RACE) -count=1 -timeout 15m ./...
	# The allocation budgets per round trip (agent/allocs_test.go) skip
	# under -race, where sync.Pool drops objects at random: run them
	# without it.
	go test -count=1 -run '^TestAllocs' ./agent/

# govulncheck (pinned, through the module proxy) checks the code paths that
# reach known vulnerabilities. It needs its database at vuln.go.dev; where
# that cannot be reached, say so and go on rather than fail (findings fail).
GOVULNCHECK := golang.org/x/vuln/cmd/govulncheck@v1.9.0
lint:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	@out="$$(go run $(GOVULNCHECK) ./... 2>&1)"; rc=$$?; \
	if [ $$rc -eq 0 ]; then echo "govulncheck: no vulnerabilities"; \
	elif echo "$$out" | grep -q "fetching vulnerabilities"; then \
		echo "note: govulncheck could not reach its database (vuln.go.dev); not checked:"; echo "$$out" | grep "fetching vulnerabilities"; \
	else echo "$$out"; exit 1; fi

# Go benchmarks of the hot path (allocations per request), the 1 GB
# upload and download through two agent processes (streamtest: digests,
# each agent's peak RSS, throughput beside direct; make test runs it with
# 256 MiB), then the side-by-side benchmark of every way to reach a
# loopback echo service (natsmesh bench; its table also goes to
# bench-results/latest.json), and the change of each of its scenarios
# from the last recorded run: this machine's previous run (the last
# latest.json, kept as bench-results/previous.json), or, where none was
# made, the run committed as docs/bench-baseline.json (decision 139).
# BENCH_FLAGS passes more flags (BENCH_FLAGS=--scaling adds the scaling
# figures); BENCH_BASELINE names another results file to compare with.
BENCH_BASELINE ?= $(if $(wildcard bench-results/latest.json),bench-results/previous.json,docs/bench-baseline.json)
BENCH_FLAGS ?=
bench: build
	go test -run '^$$' -bench . -benchmem ./wire/ ./meshgrpc/ ./agent/
	NATSMESH_BIG=1 go test -count=1 -v -run '^TestGigabyteThroughAgents$$' ./streamtest/
	@if [ -f bench-results/latest.json ]; then mv bench-results/latest.json bench-results/previous.json; fi
	bin/natsmesh bench --compare $(BENCH_BASELINE) $(BENCH_FLAGS)

# nginx for the bench's classic sidecar-pair scenario, from Debian packages;
# does nothing when nginx is already installed.
bench-deps:
	@if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then \
		echo "nginx already installed"; \
	else \
		apt-get update && apt-get install -y nginx; \
	fi

# A whole mesh on the embedded broker: services, agents, gateway (Ctrl-C
# stops it). Broker on 127.0.0.1:4222, gateway on 127.0.0.1:8080.
demo: build
	bin/natsmesh demo

# The fault suite's long cases (streamtest, issue 21): kills and freezes
# of a service, its agent and the caller's agent, a drain, a broker's
# restart, a three-broker cluster (one killed; a rolling restart in
# lame-duck mode), network delay, loss and a partition in network
# namespaces, and 10x overload, each under load with a ledger; about 5
# minutes. The network cases need root (or CAP_SYS_ADMIN), iproute2
# (installed here from Debian's packages when missing) and, for delay and
# loss, the kernel's netem qdisc; each skips, saying why, where the
# machine lacks them. Without -race: the load is the point.
chaos:
	@command -v ip >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null; } || echo "note: no iproute2: the network cases will skip"
	NATSMESH_CHAOS=1 go test -count=1 -v -timeout 30m -run '^TestChaos' ./streamtest/

# The soak: a fixed rate (SOAK_RATE requests/s) through two agents for
# SOAK_FOR, each agent's memory and goroutines sampled and required flat
# after warm-up, every request served and the ledger's rules kept.
SOAK_FOR ?= 10m
SOAK_RATE ?= 200
soak:
	NATSMESH_SOAK=1 NATSMESH_SOAK_FOR=$(SOAK_FOR) NATSMESH_SOAK_RATE=$(SOAK_RATE) go test -count=1 -v -timeout 2h -run '^TestSoak$$' ./streamtest/

# Fuzz every target in turn for FUZZTIME each (the seeds alone run in make
# test). New crashers land in testdata/fuzz/ and become regression seeds.
FUZZTIME ?= 1m
FUZZPKGS ?= ./wire/ ./internal/httpguard/ ./policies/
fuzz:
	@for pkg in $(FUZZPKGS); do \
	  for t in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$t ($(FUZZTIME))"; \
	    go test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -parallel 1 $$pkg || exit 1; \
	  done; \
	done

# Mutation testing (gremlins, pinned, through the module proxy): each
# package's own tests run against every small change of its code (a
# condition negated or moved by one, an operator swapped); a change no
# test notices "lived" (docs/testing.md). One package at a time, one
# worker, at the lowest CPU priority and GOMAXPROCS=1, without -race;
# -count=1 so that the timeout, a multiple of the measured test time, is
# not derived from a cached run. The tests of authz, wire and wire's
# codecs (wire/grpcwire, wire/httpwire) take about a second, less than
# building a mutant does: their timeout takes a larger multiple. Each package's report goes to mutation-results/<pkg>.json,
# its summary to the terminal. Two to three hours on a busy 2-core
# machine; MUTATE_PKGS=./authz/ runs one package, MUTATE_FLAGS passes more
# of gremlins' flags (MUTATE_FLAGS="-E inbound.go" leaves a file out).
GREMLINS := github.com/go-gremlins/gremlins/cmd/gremlins@v0.6.0
MUTATE_PKGS ?= ./authz/ ./accounts/ ./pipeline/ ./internal/admission/ ./resilience/ ./wire/ ./wire/grpcwire/ ./wire/httpwire/
MUTATE_TIMEOUT_COEFFICIENT ?= 6
MUTATE_FAST_PKGS ?= ./authz/ ./wire/ ./wire/grpcwire/ ./wire/httpwire/
MUTATE_FAST_TIMEOUT_COEFFICIENT ?= 30
mutate:
	@mkdir -p mutation-results
	@for pkg in $(MUTATE_PKGS); do \
	  name=$$(echo $$pkg | sed 's,^\./,,; s,/$$,,; s,/,-,g'); \
	  coef=$(MUTATE_TIMEOUT_COEFFICIENT); \
	  case " $(MUTATE_FAST_PKGS) " in *" $$pkg "*) coef=$(MUTATE_FAST_TIMEOUT_COEFFICIENT);; esac; \
	  echo "== $$pkg (report: mutation-results/$$name.json)"; \
	  (cd $$pkg && GOFLAGS=-count=1 GOMAXPROCS=1 nice -n 19 go run $(GREMLINS) unleash \
	    --workers 1 --timeout-coefficient $$coef $(MUTATE_FLAGS) \
	    --output $(CURDIR)/mutation-results/$$name.json) || exit 1; \
	done

clean:
	rm -rf bin
