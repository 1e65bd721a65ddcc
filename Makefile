# The two commands of the README: `make demo` and `make test`. Both add the wasm32-wasip1
# target when it is missing and build the filter before using it.

WASM := target/wasm32-wasip1/release/llm_tracer.wasm
# The artifact to deploy: the compiler's output through binaryen's size optimizer when
# `wasm-opt` is installed (Debian/Ubuntu: `apt-get install binaryen`), else a copy of it. The
# test host loads it in preference to the compiler's output. `--low-memory-unused` lets
# wasm-opt fold constant offsets into loads and stores, which only changes what happens to an
# address that wraps below 1 KiB (it traps instead); Rust code never forms one. `--converge`
# repeats the passes while they still shrink the module (about 1 KB more, 15 s).
DIST := dist/llm_tracer.wasm
WASM_OPT_FLAGS := -Oz --converge --low-memory-unused --strip-debug --strip-producers \
	--enable-bulk-memory --enable-sign-ext --enable-mutable-globals --enable-nontrapping-float-to-int

.PHONY: demo test wasm target lint

demo: wasm
	cargo run --quiet -p llm-tracer-host -- demo

test: wasm
	python3 -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	cargo test --workspace
	$(MAKE) --no-print-directory lint

wasm: target
	cargo build --release --target wasm32-wasip1 -p llm-tracer
	@$(MAKE) --no-print-directory $(DIST)
	@ls -l $(WASM) | awk '{print "compiled llm_tracer.wasm: " $$5 " bytes"}'
	@ls -l $(DIST) | awk '{print "dist/llm_tracer.wasm: " $$5 " bytes"}'

$(DIST): $(WASM)
	@mkdir -p dist
	@if command -v wasm-opt >/dev/null 2>&1; then \
		wasm-opt $(WASM_OPT_FLAGS) $(WASM) -o $@; \
	else \
		echo "wasm-opt not found (apt-get install binaryen): $@ is the compiler's output unoptimized"; \
		cp $(WASM) $@; \
	fi

target:
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1

lint: target
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p llm-tracer --target wasm32-wasip1 --release -- -D warnings

# Benchmarks (BENCHMARKS.md) of the deployed filter against a naive baseline filter, both
# through the same size optimizer; the host and the native core in the bench profile without the
# fat LTO the .wasm is built with, in their own target directory so a long bench build never
# holds the lock of target/release.
NAIVE := target/wasm32-wasip1/release/naive_llm_filter.wasm
NAIVE_DIST := target/bench/naive_llm_filter.wasm

.PHONY: bench
bench: wasm
	cargo build --release --target wasm32-wasip1 --target-dir target \
		--manifest-path tests/host/benches/naive/Cargo.toml
	@mkdir -p target/bench
	@if command -v wasm-opt >/dev/null 2>&1; then \
		wasm-opt $(WASM_OPT_FLAGS) $(NAIVE) -o $(NAIVE_DIST); \
	else \
		cp $(NAIVE) $(NAIVE_DIST); \
	fi
	LLM_TRACER_WASM=$(CURDIR)/$(DIST) LLM_TRACER_NAIVE_WASM=$(CURDIR)/$(NAIVE_DIST) \
		CARGO_TARGET_DIR=target/bench CARGO_PROFILE_BENCH_LTO=false \
		CARGO_PROFILE_BENCH_CODEGEN_UNITS=16 CARGO_PROFILE_BENCH_OPT_LEVEL=3 \
		cargo bench -p llm-tracer-host --bench filter --bench sse --bench gateway

# Every fuzz target for ~20 s with nightly (cargo-fuzz installed when missing), else the seed
# corpora replayed through the same harnesses on stable (fuzz/smoke.sh, fuzz/README.md).
.PHONY: fuzz-smoke
fuzz-smoke:
	bash fuzz/smoke.sh
