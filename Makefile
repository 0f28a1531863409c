# natsmesh: the usual entry points. Needs only Go (and git for the version).

VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build test lint bench bench-deps demo fuzz clean

all: build

build:
	go build -ldflags "$(LDFLAGS)" -o bin/natsmesh ./cmd/natsmesh

test:
	go vet ./...
	go test -race -count=1 -timeout 15m ./...

lint:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...

# Go benchmarks of the hot path (allocations per request), then the
# side-by-side benchmark of every way to reach a loopback echo service
# (natsmesh bench; its table also goes to bench-results/latest.json).
bench: build
	go test -run '^$$' -bench . -benchmem ./bridge/ ./agent/
	bin/natsmesh bench

# nginx for the bench's classic sidecar-pair scenario, from Debian packages;
# does nothing when nginx is already installed.
bench-deps:
	@if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then \
		echo "nginx already installed"; \
	else \
		apt-get update && apt-get install -y nginx; \
	fi

# For now the demo is the broker alone on 127.0.0.1:4222 (monitoring on
# 127.0.0.1:8222); stop it with Ctrl-C.
demo: build
	bin/natsmesh broker

# Placeholder until fuzz targets land.
fuzz:
	@echo "no fuzz targets yet"

clean:
	rm -rf bin
