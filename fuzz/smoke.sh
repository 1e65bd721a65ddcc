#!/usr/bin/env bash
# `make fuzz-smoke`: a short run of every fuzz target, for CI.
#
# 1. Builds the seed tool (stable), writes the seed corpora made from tests/fixtures to
#    fuzz/corpus/<target>/ and replays every seed through its harness.
# 2. With a nightly toolchain (`cargo +nightly`), installs cargo-fuzz when missing (pinned
#    version), builds every target once (debug profile: overflow checks and debug assertions on,
#    quick to build) and runs each for FUZZ_SMOKE_SECONDS (default 20) seconds, one at a time.
#    Without nightly it says so: step 1 is then the whole check.
#
# A crash fails the run; the input is kept in fuzz/artifacts/<target>/ and the log's tail is
# printed. The long run is documented in fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
SECONDS_PER_TARGET=${FUZZ_SMOKE_SECONDS:-20}
TARGETS=(sse protocols config decode capture)
LOGS=fuzz/target/smoke-logs

seeds() {
	cargo run --quiet --manifest-path fuzz/Cargo.toml --no-default-features --features seeds \
		--bin seeds -- "$@"
}

seeds write fuzz/corpus
seeds replay

if ! cargo +nightly --version >/dev/null 2>&1; then
	echo "notice: no nightly toolchain (cargo +nightly): the fuzz targets did not run;"
	echo "notice: their seed corpora were replayed through the same harnesses on stable above."
	echo "notice: to fuzz, run: rustup toolchain install nightly && make fuzz-smoke"
	exit 0
fi

if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
	cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

cargo +nightly fuzz build --dev --sanitizer none
mkdir -p "$LOGS"
failed=0
for target in "${TARGETS[@]}"; do
	log="$LOGS/$target.log"
	if cargo +nightly fuzz run --dev --sanitizer none "$target" "fuzz/corpus/$target" -- \
		-max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 >"$log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
		echo "fuzz $target: ${runs:-?} executions in ${SECONDS_PER_TARGET} s, no crash"
	else
		failed=$((failed + 1))
		echo "fuzz $target: FAILED (input kept in fuzz/artifacts/$target/); end of $log:"
		tail -n 40 "$log"
	fi
done
echo "fuzz-smoke: $(( ${#TARGETS[@]} - failed )) passed, $failed failed"
[ "$failed" -eq 0 ]
