#!/usr/bin/env bash
# Check the TextMate grammar of .stp files and the VS Code extension in
# editors/vscode/ (see editors/README.md).
#
#   scripts/check_textmate.sh [--verbose]
#
# Installs vscode-textmate and vscode-oniguruma (the tokenizer VS Code uses)
# with npm into a directory outside the repository, $STPIPE_TEXTMATE_DEPS or
# ${TMPDIR:-/tmp}/stpipe-textmate-deps, reused by later runs; then
# scripts/check_textmate.mjs tokenizes pipelines/*.stp, tests/invalid/*.stp and
# a few synthetic corner cases and compares the scopes with what
# grammar/stp.pest says. Needs node (>= 18) and npm; no cargo.
# Exit status 0 when everything passes, 1 on a failed check, 2 on a set-up error.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deps="${STPIPE_TEXTMATE_DEPS:-${TMPDIR:-/tmp}/stpipe-textmate-deps}"
textmate=9.3.2
oniguruma=2.0.1

for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "check_textmate: $tool not found" >&2; exit 2; }
done
case "$(cd "$(dirname "$deps")" 2>/dev/null && pwd)/" in
  "$root"/*) echo "check_textmate: $deps is inside the repository; set STPIPE_TEXTMATE_DEPS" >&2; exit 2 ;;
esac

installed() { # installed NAME VERSION
  node -e 'process.exit(require(process.argv[1]).version === process.argv[2] ? 0 : 1)' \
    "$deps/node_modules/$1/package.json" "$2" 2>/dev/null
}
if ! installed vscode-textmate "$textmate" || ! installed vscode-oniguruma "$oniguruma"; then
  echo "check_textmate: installing vscode-textmate@$textmate vscode-oniguruma@$oniguruma into $deps" >&2
  mkdir -p "$deps"
  npm install --prefix "$deps" --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
    "vscode-textmate@$textmate" "vscode-oniguruma@$oniguruma" >&2 \
    || { echo "check_textmate: npm install failed" >&2; exit 2; }
fi

exec node "$root/scripts/check_textmate.mjs" --deps "$deps" --root "$root" "$@"
