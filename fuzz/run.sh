#!/bin/sh
# Runs each fuzz target for FUZZ_SECONDS and prints one line per target:
# seconds, runs (executions), coverage (edges), crashes. `make fuzz` calls it.
#
# libFuzzer through cargo-fuzz needs nightly features (-Z sanitizer,
# -Cpasses=sancov); RUSTC_BOOTSTRAP=1 lets a stable toolchain use them.
# New corpus entries go to fuzz/corpus/TARGET (not in git); the seeds in
# fuzz/seeds/TARGET are read too. A crash stops its target and is written
# to fuzz/artifacts/TARGET/; reproduce it with
#   cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET artifacts/TARGET/crash-...
set -u
cd "$(dirname "$0")"
SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-"line_buffer frame script duration"}
CARGO=${CARGO:-cargo}
export RUSTC_BOOTSTRAP=1
mkdir -p logs
RUSTC_BOOTSTRAP=1 $CARGO fuzz build || exit 125
failed=0
summary=""
for t in $TARGETS; do
	mkdir -p "corpus/$t" "seeds/$t" "artifacts/$t"
	before=$(ls "artifacts/$t" | wc -l)
	log="logs/$t.log"
	echo "fuzzing $t for ${SECONDS_EACH}s (log: fuzz/$log)"
	$CARGO fuzz run "$t" "corpus/$t" "seeds/$t" -- \
		-max_total_time="$SECONDS_EACH" -print_final_stats=1 >"$log" 2>&1
	status=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
	crashes=$(( $(ls "artifacts/$t" | wc -l) - before ))
	if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes="? (exit $status, see fuzz/$log)"; fi
	[ "$status" -eq 0 ] || failed=1
	line=$(printf '%-12s %6ss  runs %-10s coverage %-6s crashes %s' "$t" "$SECONDS_EACH" "${runs:-?}" "${cov:-?}" "$crashes")
	echo "$line"
	summary="$summary$line
"
done
echo
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
printf '%s' "$summary"
exit $failed
