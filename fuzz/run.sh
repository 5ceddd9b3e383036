#!/bin/sh
# Runs each fuzz target for FUZZ_SECONDS and prints one line per target:
# seconds, runs (executions), coverage (edges), crashes. `make fuzz` calls it.
#
# libFuzzer through cargo-fuzz needs nightly features (-Z sanitizer,
# -Cpasses=sancov); RUSTC_BOOTSTRAP=1 lets a stable toolchain use them.
# New corpus entries go to fuzz/corpus/TARGET (not in git); the seeds in
# fuzz/seeds/TARGET are read too. A crash stops its target and is written
# to fuzz/artifacts/TARGET/; reproduce it with
#   cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s none TARGET artifacts/TARGET/crash-...
#
# No sanitizer (-s none): the code fuzzed is safe Rust, where AddressSanitizer
# finds nothing that bounds and overflow checks (kept on) do not, and it made
# the frame target dozens of times slower (its shadow memory for each large buffer).
set -u
cd "$(dirname "$0")"
SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-"line_buffer search frame script duration"}
CARGO=${CARGO:-cargo}
export RUSTC_BOOTSTRAP=1
mkdir -p logs
$CARGO fuzz build -s none || exit 125
failed=0
summary=""
for t in $TARGETS; do
	mkdir -p "corpus/$t" "seeds/$t" "artifacts/$t"
	before=$(ls "artifacts/$t" | wc -l)
	log="logs/$t.log"
	echo "fuzzing $t for ${SECONDS_EACH}s (log: fuzz/$log)"
	start=$(date +%s)
	$CARGO fuzz run -s none "$t" "corpus/$t" "seeds/$t" -- \
		-max_total_time="$SECONDS_EACH" -print_final_stats=1 >"$log" 2>&1
	status=$?
	took=$(( $(date +%s) - start ))
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
	crashes=$(( $(ls "artifacts/$t" | wc -l) - before ))
	if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes="? (exit $status, see fuzz/$log)"; fi
	[ "$status" -eq 0 ] || failed=1
	line=$(printf '%-12s %6ss  runs %-10s coverage %-6s crashes %s' "$t" "$took" "${runs:-?}" "${cov:-?}" "$crashes")
	echo "$line"
	summary="$summary$line
"
done
echo
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
printf '%s' "$summary"
exit $failed
