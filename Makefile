# shoal: `make demo` and `make test` set up everything they need.
SWIFT ?= swift
BIN := .build/debug/shoal
OUTPUT ?= output

.PHONY: all deps test-deps build demo test bench fuzz clean

all: build

deps:
	@scripts/install-deps.sh

test-deps:
	@scripts/install-deps.sh --test

build: deps
	$(SWIFT) build

demo: build
	$(BIN) create -p k3s -n 2 --monitoring --headlamp -o $(OUTPUT)

test: test-deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --skip FaultTests
	$(SWIFT) test --skip-build --filter FaultTests

bench: build
	$(SWIFT) build -c release
	scripts/bench.sh

# Coverage-guided fuzzing of the decoders and the YAML writer (FUZZ_RUNS inputs, default 1,000,000).
fuzz: test-deps
	scripts/fuzz.sh

clean:
	rm -rf .build .build-fuzz $(OUTPUT)
