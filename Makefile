# natsmesh: the usual entry points. Needs only Go (and git for the version).

VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build test lint bench demo fuzz clean

all: build

build:
	go build -ldflags "$(LDFLAGS)" -o bin/natsmesh ./cmd/natsmesh

test:
	go vet ./...
	go test -race -count=1 -timeout 15m ./...

lint:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...

# Placeholder until benchmarks land: runs every benchmark once.
bench:
	go test -run '^$$' -bench . -benchmem ./...

# A whole mesh on the embedded broker: services, agents, gateway (Ctrl-C
# stops it). Broker on 127.0.0.1:4222, gateway on 127.0.0.1:8080.
demo: build
	bin/natsmesh demo

# Fuzz every target in turn for FUZZTIME each (the seeds alone run in make
# test). New crashers land in testdata/fuzz/ and become regression seeds.
FUZZTIME ?= 1m
FUZZPKGS ?= ./bridge/ ./agent/
fuzz:
	@for pkg in $(FUZZPKGS); do \
	  for t in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$t ($(FUZZTIME))"; \
	    go test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -parallel 1 $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin
