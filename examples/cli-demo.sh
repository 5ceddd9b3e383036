#!/bin/sh
# `make demo`, part two: the duet command line with bc and the fixture.
set -eu
# The binaries are in Cargo's target directory: TARGET_DIR (what `make`
# passes), else CARGO_TARGET_DIR, else the one `cargo metadata` reports.
target=${TARGET_DIR:-${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')}}
duet=$target/debug/duet
fixture=$target/debug/duet-fixture
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo '== chat: each stdin line is a request, each reply a line'
printf '%s\n' '$ printf "2+2\n3*3\n" | duet chat -- bc -q'
printf '2+2\n3*3\n' | $duet chat -- bc -q

echo
echo '== script: expect/send for CI'
cat > "$work/calc.duet" <<'SCRIPT'
# the fixture's calculator
sendline 6 * 7
expect ^42$
sendline 1 / 0
expect ^ERR
SCRIPT
cat "$work/calc.duet"
echo '$ duet script calc.duet -- duet-fixture calc'
$duet script "$work/calc.duet" -- $fixture calc && echo "passed"
printf 'sendline 2 + 2\ntimeout 500ms\nexpect ^5$\n' > "$work/wrong.duet"
echo '$ duet script wrong.duet -- duet-fixture calc   # a failing step'
$duet script "$work/wrong.duet" -- $fixture calc 2>&1 || echo "(exit $?)"

echo
echo '== serve: bc behind two FIFOs, shared by any process'
echo '$ dir=$(duet serve --daemon DIR -- bc -q)'
dir=$($duet serve --daemon "$work/calc" -- bc -q)
echo '$ duet ask "$dir" "2^10"'
$duet ask "$dir" '2^10'
echo '$ duet ask "$dir" "scale=3; 22/7"'
$duet ask "$dir" 'scale=3; 22/7'
$duet status "$dir"
echo '$ duet stop "$dir"'
$duet stop "$dir"
ls "$dir" 2>/dev/null || echo "(DIR removed)"
