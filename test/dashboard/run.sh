#!/usr/bin/env bash
# run.sh: meter.dashboard_html in a real browser. Loads a small, realistic
# tenant (data.sql) into a fresh database, writes its page over the last 14
# days (and the page of a range without usage) to files, checks that each is
# self-contained (no script, no link, no src or href, no URL), renders each
# with headless Chromium (Debian's chromium, installed by scripts/setup.sh)
# and checks the screenshot is the page (png_check.mjs: the chart colours,
# the page's background and cards, many colours of text and charts) and not
# an error or a blank page. A negative control proves the screenshot check
# can fail: a bare error page must not pass it.
#
# Ends with one line "dashboard: N passed, M failed" (one per check); the
# pages and screenshots stay in DASHBOARD_OUT (default: a temporary folder).
set -uo pipefail
source "$(dirname "$0")/../../scripts/env.sh"
cd "$PGM_ROOT"
out=${DASHBOARD_OUT:-$(mktemp -d)}
mkdir -p "$out"
db=pg_meter_dashboard_$$
passed=0
failed=0
check() {  # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@" >/dev/null 2>&1; then
        echo "ok - $what"; passed=$((passed + 1))
    else
        echo "not ok - $what"; failed=$((failed + 1))
    fi
}
finish() {
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
    echo "dashboard: $passed passed, $failed failed"
    exit $((failed > 0))
}
trap finish EXIT

PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 -d postgres \
    -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null &&
    psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "SET client_min_messages = warning" -c "CREATE EXTENSION pg_meter" >/dev/null
check "a fresh database with pg_meter" test $? -eq 0
check "the tenant loads" psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f test/dashboard/data.sql

page() {  # page FILE SINCE UNTIL TENANT
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -o "$1" \
        -c "SELECT meter.dashboard_html('$4', $2, $3)"
}
check "the page of the last 14 days is written" page "$out/dashboard.html" "now() - interval '14 days'" "now()" acme-app
check "the page of a range without usage is written" page "$out/empty.html" "'2020-01-01'" "'2020-01-02'" acme-app

# self-contained: nothing to fetch. Text is escaped, so every "<" opens one
# of the page's own tags.
self_contained() {
    local f=$1
    head -c 15 "$f" | grep -q '^<!DOCTYPE html>' &&
        grep -q '</html>$' "$f" &&
        ! grep -Eiq '<[^>]*[[:space:]](src|href|srcset|action|poster|data)[[:space:]]*=' "$f" &&
        ! grep -Eiq '<(script|link|iframe|object|embed|img|base|meta http-equiv)' "$f" &&
        ! grep -Eiq '(https?:|//[a-z0-9.-]+\.[a-z]{2,}|url\(|@import)' "$f"
}
for f in dashboard empty; do
    check "$f.html is one self-contained page" self_contained "$out/$f.html"
done
sections() {
    local s
    for s in overview cost_per_day requests_per_hour latency cache top_subjects quota_status runway; do
        grep -q "id=\"s-$s\"" "$1" || return 1
    done
}
check "every section is on the page" sections "$out/dashboard.html"
check "the hostile subject is text, not a tag" \
    bash -c "grep -q '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;' '$out/dashboard.html' && ! grep -q '<script' '$out/dashboard.html'"
check "the empty range says there is no usage" grep -q 'id="no-usage"' "$out/empty.html"

# a browser draws it
shot() {  # shot HTML PNG
    local profile
    profile=$(mktemp -d)
    rm -f "$2"
    timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
        --user-data-dir="$profile" --screenshot="$2" --window-size=1280,2400 "file://$1" > "$2.log" 2>&1
    local rc=$?
    rm -rf "$profile"
    [[ $rc -eq 0 && -s $2 ]] && ! grep -q 'Page load failed' "$2.log"
}
check "headless Chromium renders the page" shot "$out/dashboard.html" "$out/dashboard.png"
check "headless Chromium renders the empty page" shot "$out/empty.html" "$out/empty.png"
# the page: its chart colours (series blue, orange, teal; errors red), the
# background and white cards, and the many colours of text and bars
node test/dashboard/png_check.mjs "$out/dashboard.png" --size 1280x2400 --min-colours 500 \
    --colour '#4e79a7:2000' --colour '#f28e2b:2000' --colour '#76b7b2:2000' --colour '#e15759:100' \
    --share '#f3f4f6:0.03' --share '#ffffff:0.30' > "$out/dashboard.png.check"
check "the screenshot is the dashboard: $(grep -c '^ok' "$out/dashboard.png.check") of $(wc -l < "$out/dashboard.png.check") pixel checks" \
    test "$(grep -c '^not ok' "$out/dashboard.png.check")" -eq 0
# the empty page: the banner, and no chart
node test/dashboard/png_check.mjs "$out/empty.png" --size 1280x2400 --colour '#eef2ff:20000' \
    --absent '#4e79a7' --absent '#f28e2b' --share '#f3f4f6:0.3' > "$out/empty.png.check"
check "the empty screenshot is the no-usage page: $(grep -c '^ok' "$out/empty.png.check") of $(wc -l < "$out/empty.png.check") pixel checks" \
    test "$(grep -c '^not ok' "$out/empty.png.check")" -eq 0
# negative control: a bare error page must fail the same pixel checks
printf '<!DOCTYPE html><html><body><h1>This site can&#39;t be reached</h1><p>ERR_FILE_NOT_FOUND</p></body></html>' \
    > "$out/error.html"
shot "$out/error.html" "$out/error.png"
check "an error page does not pass for the dashboard" \
    bash -c "! node test/dashboard/png_check.mjs '$out/error.png' --size 1280x2400 --min-colours 500 \
             --colour '#4e79a7:2000' --share '#f3f4f6:0.03'"
cat "$out"/*.check
echo "pages and screenshots: $out"
