# The two commands of the README: `make demo` and `make test`. Both add the wasm32-wasip1
# target when it is missing and build the filter before using it.

WASM := target/wasm32-wasip1/release/llm_tracer.wasm

.PHONY: demo test wasm target lint

demo: wasm
	cargo run --quiet -p llm-tracer-host -- demo

test: wasm
	cargo test --workspace
	$(MAKE) --no-print-directory lint

wasm: target
	cargo build --release --target wasm32-wasip1 -p llm-tracer
	@ls -l $(WASM) | awk '{print "llm_tracer.wasm: " $$5 " bytes"}'

target:
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1

lint: target
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p llm-tracer --target wasm32-wasip1 --release -- -D warnings
