#!/usr/bin/env bash
# Render a run's report.html in a real headless browser and check it.
#
#   scripts/check_report_html.sh RUN_DIR [SCREENSHOT.png]
#
# Writes RUN_DIR/report.html with `stpipe report` (the binary at $STPIPE, or
# target/release/stpipe), opens it from disk in Debian's chromium through
# puppeteer-core (npm, installed into $STPIPE_BROWSER_DEPS or
# ${TMPDIR:-/tmp}/stpipe-browser-deps, outside the repository), and checks:
# no console error, no failed request, no page error; the curves image is
# decoded (its natural size is the PNG's); the final-metrics, expectations
# and steps tables have rows; the pipeline and plan are shown. Saves a
# full-page screenshot (default RUN_DIR/report.png). Needs chromium
# (`apt-get install chromium`), node >= 18 and npm.
# Exit status 0 when every check passes, 1 on a failed check, 2 on set-up errors.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# -ge 1 ] || { echo "usage: $0 RUN_DIR [SCREENSHOT.png]" >&2; exit 2; }
run_dir="$1"
shot="${2:-$run_dir/report.png}"
stpipe="${STPIPE:-$root/target/release/stpipe}"
deps="${STPIPE_BROWSER_DEPS:-${TMPDIR:-/tmp}/stpipe-browser-deps}"
puppeteer=23.11.1

browser="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
[ -n "$browser" ] || { echo "check_report_html: chromium not found (apt-get install chromium)" >&2; exit 2; }
for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "check_report_html: $tool not found" >&2; exit 2; }
done
[ -x "$stpipe" ] || { echo "check_report_html: no stpipe at $stpipe (cargo build --release, or set STPIPE)" >&2; exit 2; }

if ! node -e 'process.exit(require(process.argv[1]).version === process.argv[2] ? 0 : 1)' \
    "$deps/node_modules/puppeteer-core/package.json" "$puppeteer" 2>/dev/null; then
  echo "check_report_html: installing puppeteer-core@$puppeteer into $deps" >&2
  mkdir -p "$deps"
  npm install --prefix "$deps" --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
    "puppeteer-core@$puppeteer" >&2 || { echo "check_report_html: npm install failed" >&2; exit 2; }
fi

"$stpipe" report "$run_dir"
exec node "$root/scripts/check_report_html.mjs" "$deps" "$browser" "$run_dir/report.html" "$shot"
