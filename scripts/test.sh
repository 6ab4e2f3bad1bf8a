#!/usr/bin/env bash
# test.sh: sets everything up (scripts/setup.sh) and runs every suite:
# GoogleTest (core), pg_regress, isolation, pgTAP, Perl TAP (crash), the
# agreement test against genai-prices, the dashboard in headless Chromium and
# the Prometheus exporter's test.
# Ends with one line "N passed, M failed".
set -uo pipefail
source "$(dirname "$0")/env.sh"
cd "$PGM_ROOT"
logs="$PGM_RUN/test-logs"

if ! bash scripts/setup.sh; then
    echo "setup failed"
    echo "0 passed, 1 failed"
    exit 1
fi
rm -rf "$logs"; mkdir -p "$logs"; chown postgres "$PGM_RUN" "$logs"
passed=0
failed=0
count() {  # count NAME PASSED FAILED
    printf '%-12s %5d passed, %d failed\n' "$1" "$2" "$3"
    passed=$((passed + $2))
    failed=$((failed + $3))
}
# count_line NAME FILE: counts the line "NAME: N passed, M failed" of FILE
# (no such line: the suite died, 1 failed)
count_line() {
    local line
    line=$(grep -E "^$1: [0-9]+ passed, [0-9]+ failed" "$2" | tail -1)
    if [[ -n "$line" ]]; then
        count "$1" "$(awk '{print $2}' <<<"$line")" "$(awk '{print $4}' <<<"$line")"
    else
        count "$1" 0 1
    fi
}
# tap_counts FILE: "passed failed" from prove/pg_prove output
tap_counts() {
    local total bad
    total=$(grep -oE 'Tests=[0-9]+' "$1" | tail -1 | cut -d= -f2)
    bad=$(grep -oE 'Failed [0-9]+/[0-9]+ subtests' "$1" | awk '{split($2, a, "/"); s += a[1]} END {print s + 0}')
    total=${total:-0}
    if ! grep -q '^Result: PASS' "$1" && [[ "$bad" -eq 0 ]]; then bad=1; fi  # died without a count
    echo "$((total - bad > 0 ? total - bad : 0)) $bad"
}

echo "== GoogleTest (core)"
ctest --test-dir build --output-on-failure > "$logs/ctest.log" 2>&1
t=$(grep -oE '[0-9]+ tests failed out of [0-9]+' "$logs/ctest.log" | tail -1)
if [[ -n "$t" ]]; then
    f=$(echo "$t" | awk '{print $1}'); n=$(echo "$t" | awk '{print $6}')
    count ctest $((n - f)) "$f"
else
    count ctest 0 1; tail -20 "$logs/ctest.log"
fi
grep -E 'Failed|\*\*\*' "$logs/ctest.log" | head -20

echo "== GoogleTest under AddressSanitizer and UBSan"
asan="$PGM_RUN/build-asan"
if cmake -S . -B "$asan" -DCMAKE_BUILD_TYPE=Debug \
        -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -O1" >/dev/null &&
   cmake --build "$asan" -j2 --target core_tests > "$logs/asan-build.log" 2>&1; then
    ctest --test-dir "$asan" --output-on-failure > "$logs/ctest-asan.log" 2>&1
    t=$(grep -oE '[0-9]+ tests failed out of [0-9]+' "$logs/ctest-asan.log" | tail -1)
    if [[ -n "$t" ]]; then
        f=$(echo "$t" | awk '{print $1}'); n=$(echo "$t" | awk '{print $6}')
        count ctest-asan $((n - f)) "$f"
    else
        count ctest-asan 0 1; tail -20 "$logs/ctest-asan.log"
    fi
    grep -E 'runtime error|AddressSanitizer|\*\*\*' "$logs/ctest-asan.log" | head -10
else
    count ctest-asan 0 1; tail -20 "$logs/asan-build.log"
fi

echo "== pg_regress"
make -s installcheck > "$logs/regress.log" 2>&1
ok=$(grep -cE '\.\.\. ok' "$logs/regress.log"); bad=$(grep -cE '\.\.\. FAILED|\.\.\. failed' "$logs/regress.log")
[[ $ok -eq 0 && $bad -eq 0 ]] && bad=1
count pg_regress "$ok" "$bad"
[[ $bad -gt 0 ]] && { cat "$logs/regress.log" | tail -20; head -80 regression.diffs 2>/dev/null; }

echo "== isolation"
"$(dirname "$(pg_config --pgxs)")/../test/isolation/pg_isolation_regress" \
    --inputdir=test/isolation --outputdir="$logs/isolation" --host="$PGHOST" --port="$PGPORT" \
    --load-extension=pg_meter --schedule=test/isolation/schedule > "$logs/isolation.log" 2>&1
ok=$(grep -cE '\.\.\. ok' "$logs/isolation.log"); bad=$(grep -cE '\.\.\. FAILED|\.\.\. failed' "$logs/isolation.log")
[[ $ok -eq 0 && $bad -eq 0 ]] && bad=1
count isolation "$ok" "$bad"
[[ $bad -gt 0 ]] && { tail -20 "$logs/isolation.log"; head -80 "$logs/isolation/regression.diffs" 2>/dev/null; }

echo "== pgTAP"
# a fresh database, so the schema under test is the one just installed
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS pg_meter_tap" -c "CREATE DATABASE pg_meter_tap" >/dev/null 2>&1
psql -X -q -d pg_meter_tap -c "SET client_min_messages = warning" -c "CREATE EXTENSION pg_meter" -c "CREATE EXTENSION pgtap" >/dev/null 2>&1
pg_prove -d pg_meter_tap test/pgtap/*.sql > "$logs/pgtap.log" 2>&1
read -r ok bad < <(tap_counts "$logs/pgtap.log")
count pgTAP "$ok" "$bad"
[[ $bad -gt 0 ]] && tail -30 "$logs/pgtap.log"

echo "== Perl TAP (crash and restart)"
tapdir="$PGM_RUN/tap"
rm -rf "$tapdir"; mkdir -p "$tapdir"; chown postgres "$tapdir"
pgxs_dir=$(dirname "$(pg_config --pgxs)")/..
(cd "$tapdir" && runuser -u postgres -- env PATH="$PATH" PERL5LIB="$pgxs_dir/test/perl" \
    PG_REGRESS="$pgxs_dir/test/regress/pg_regress" TESTDIR="$tapdir" PGM_ROOT="$PGM_ROOT" \
    prove "$PGM_ROOT"/test/perl/*.t) > "$logs/tap.log" 2>&1
read -r ok bad < <(tap_counts "$logs/tap.log")
count tap "$ok" "$bad"
[[ $bad -gt 0 ]] && tail -30 "$logs/tap.log"

if [[ -x test/agreement/run.sh ]]; then
    echo "== agreement with genai-prices calcPrice"
    test/agreement/run.sh > "$logs/agreement.log" 2>&1
    count_line agreement "$logs/agreement.log"
    grep -vE '^agreement:' "$logs/agreement.log" | tail -25
fi

echo "== dashboard in headless Chromium"
# a small tenant's meter.dashboard_html, checked self-contained, rendered
# and its screenshot checked (pages and screenshots kept in the logs)
DASHBOARD_OUT="$logs/dashboard" test/dashboard/run.sh > "$logs/dashboard.log" 2>&1
count_line dashboard "$logs/dashboard.log"
grep -E '^not ok' "$logs/dashboard.log" | head -20

echo "== Prometheus: prometheus-postgres-exporter with integrations/prometheus/queries.yaml"
test/prometheus/run.sh > "$logs/prometheus.log" 2>&1
count_line prometheus "$logs/prometheus.log"
grep -E '^not ok' "$logs/prometheus.log" | head -20

echo "logs: $logs"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
