# shoal: `make demo` and `make test` set up everything they need.
SWIFT ?= swift
BIN := .build/debug/shoal
OUTPUT ?= output
# `make install`: where, and which build (debug like `make demo`, or release).
PREFIX ?= /usr/local
CONFIG ?= debug

.PHONY: all deps test-deps build demo test bench fuzz install uninstall clean

all: build

deps:
	@scripts/install-deps.sh

test-deps:
	@scripts/install-deps.sh --test

build: deps
	$(SWIFT) build

demo: build
	$(BIN) create -p k3s -n 2 --monitoring --headlamp -d $(OUTPUT)

# At most this many test cases at once (Swift Testing starts every one at once otherwise): on 2 cores, hundreds of
# waiting tests starve the cooperative pool and the processes that tests time.
TEST_WIDTH ?= 8

test: test-deps
	$(SWIFT) build --build-tests
	SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH=$(TEST_WIDTH) $(SWIFT) test --skip-build --skip FaultTests
	SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH=$(TEST_WIDTH) $(SWIFT) test --skip-build --filter FaultTests

bench: build
	$(SWIFT) build -c release
	scripts/bench.sh

# Coverage-guided fuzzing of the decoders and the YAML writer (FUZZ_RUNS inputs, default 1,000,000).
fuzz: test-deps
	scripts/fuzz.sh


# shoal (and the lean agent `shoal agent` becomes) on PATH, with its shell completions where bash, zsh and fish look for them.
install: deps
	$(SWIFT) build -c $(CONFIG)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 0755 .build/$(CONFIG)/shoal .build/$(CONFIG)/shoal-agent $(DESTDIR)$(PREFIX)/bin/
	.build/$(CONFIG)/shoal completion bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/shoal
	.build/$(CONFIG)/shoal completion zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_shoal
	.build/$(CONFIG)/shoal completion fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/shoal.fish

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/shoal $(DESTDIR)$(PREFIX)/bin/shoal-agent $(DESTDIR)$(PREFIX)/share/bash-completion/completions/shoal \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions/_shoal $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/shoal.fish

# The build only: output/ holds the Terraform state that `shoal destroy` needs.
clean:
	rm -rf .build .build-fuzz
