# Sourced by the benchmark scripts (after `cd` to the repository): the
# shared directory, a temporary directory removed on exit, this checkout's
# release binary (built unless STPIPE_BIN names another), and a line on
# the machine.
#
#   SHARED  ../shared or STPIPE_SHARED, absolute
#   TMP     a temporary directory
#   BIN     STPIPE_BIN or ./target/release/stpipe
SHARED="$(cd "${STPIPE_SHARED:-../shared}" && pwd)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
BIN="${STPIPE_BIN:-./target/release/stpipe}"
if [ -z "${STPIPE_BIN:-}" ]; then
    cargo build --release >/dev/null 2>&1 || cargo build --release
fi
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
