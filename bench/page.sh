#!/usr/bin/env bash
# Status page benchmark (not a test): the page at a site of 2,000 nodes, in Debian's chromium
# driven by playwright-core, against a real `provisioner serve`. Runs the browser test
# provisioner/tests/status_page_browser.rs::the_page_at_2000_nodes_holds_one_page_of_rows
# (which asserts only that the DOM holds one page of rows) and prints what it measured:
#
#   first_render_ms        page load with the token until the first 100 rows are shown
#   filter_failed_ms       click on "failed" until its first page is shown
#   next_page_ms           "Next" until the second page is shown
#   search_ms              typing a serial until its one row is shown (the page waits for
#                          typing to pause before it asks, so this includes that pause)
#   dom_elements           elements in the page with the first page of rows
#   fleet_page_bytes       GET /api/v1/fleet (one page of 100 rows), what each poll fetches
#                          when something changed
#   fleet_failed_page_bytes  the same for state=failed
#   all_nodes_bytes        GET /api/v1/nodes (all 2,000), what an unpaged page would load
#
#   bench/page.sh
#   BENCH_PROFILE=release   build the provisioner with cargo's release profile (default: dev,
#                           as the tests run)
# Needs chromium, node and provisioner/tests/browser/node_modules (scripts/setup.sh).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
export bench_name=bench-page
# shellcheck source=bench/lib.sh
source "$repo_root/bench/lib.sh"

profile="${BENCH_PROFILE:-dev}"
for tool in node python3 /usr/bin/chromium; do
    command -v "$tool" >/dev/null || die "$tool not found: run scripts/setup.sh"
done
[[ -d provisioner/tests/browser/node_modules/playwright-core ]] \
    || die "playwright-core is not installed: run scripts/setup.sh (npm ci in provisioner/tests/browser)"

log "running the 2,000-node page test ($profile profile; seeding the store takes a while)"
output=$(cargo test --quiet --profile "$profile" -p provisioner --test status_page_browser -- \
    --include-ignored --nocapture --exact the_page_at_2000_nodes_holds_one_page_of_rows 2>&1) \
    || { printf '%s\n' "$output" | tail -40 >&2; die "the page test failed (its output is above)"; }
line=$(printf '%s\n' "$output" | grep -m1 '^status page at [0-9]* nodes: ') \
    || { printf '%s\n' "$output" | tail -40 >&2; die "the test printed no figures"; }
seeded=$(printf '%s\n' "$output" | grep -m1 '^seeded ' || true)
[[ -n $seeded ]] && log "$seeded"
python3 - "$line" <<'PY'
import json, sys
title, figures = sys.argv[1].split(": ", 1)
print(title)
for name, value in json.loads(figures).items():
    unit = "ms" if name.endswith("_ms") else ("bytes" if name.endswith("_bytes") else "")
    print(f"  {name:<26} {value:>10} {unit}")
PY
