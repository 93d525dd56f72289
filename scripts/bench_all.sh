#!/usr/bin/env bash
# Every figure of the CPU performance acceptance (docs/performance.md) on
# this machine, in one invocation, stpipe against Python
# sentence-transformers alternating within each benchmark, and a summary
# table at the end: the CPU model and its kernels, the load before and
# after each benchmark, each ratio, peak RSS, and the FLOP utilisation of
# the training step against this machine's measured sgemm peak.
#
#   scripts/bench_all.sh [RUNS]        # RUNS for the sts recipe (default 5;
#                                      # 3 for the others)
#
# It runs, in this order: the sts recipe (`bench_train.sh 30 RUNS sts`),
# MNRL at batch 64 (`bench_train.sh 20 3 mnrl`), encoding at batch 32 and
# 128 (`bench_encode.sh`), time to step 1 (`bench_first_step.sh 3`), the
# sts recipe with one core kept busy (`BUSY=1 bench_train.sh 30 3 sts`),
# and, where the CPU has AVX512-BF16, the sts and MNRL recipes with bf16
# products on both sides (`PRECISION=bf16`); then `examples/sgemm_peak`
# and `train_flops.py` for the utilisation. About 30 minutes on 2 cores.
# Each benchmark's own output goes to $OUT (default a temporary directory)
# as <name>.log. Nothing else may run on the machine meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-5}"
PYTHON="${PYTHON:-/work/pyref/bin/python}"
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
. scripts/common.sh
export STPIPE_BIN="$BIN"
cargo build --release --example sgemm_peak --example bench_encode >/dev/null 2>&1 \
    || cargo build --release --example sgemm_peak --example bench_encode

summary=()
load() { cut -d' ' -f1-3 /proc/loadavg; }
# bench NAME COMMAND...: run one benchmark into $OUT/NAME.log and keep its
# ratio and medians for the summary.
bench() {
    local name="$1"
    shift
    local before
    before=$(load)
    echo "== $name: $*"
    "$@" >"$OUT/$name.log" 2>&1 || echo "   (exit $?; see $OUT/$name.log)"
    local meds ratio
    meds=$(grep -E '^(stpipe|python) median' "$OUT/$name.log" \
        | sed -E 's/ median:/:/; s/ over [0-9]+ runs//; s/peak RSS //' | paste -sd';' - | sed 's/;/; /g' || true)
    ratio=$(grep -o 'ratio stpipe/python: [0-9.]*' "$OUT/$name.log" | cut -d' ' -f3 || true)
    echo "   $meds ${ratio:+ratio $ratio}"
    summary+=("| $name | ${meds:-see log} | ${ratio:--} | $before / $(load) |")
}

bench sts-fp32 scripts/bench_train.sh 30 "$RUNS" sts
bench mnrl-fp32 scripts/bench_train.sh 20 3 mnrl
bench encode-32 scripts/bench_encode.sh "$SHARED/models/all-MiniLM-L6-v2" 32 "$RUNS"
bench encode-128 scripts/bench_encode.sh "$SHARED/models/all-MiniLM-L6-v2" 128 3
bench first-step scripts/bench_first_step.sh 3
bench sts-busy-core env BUSY=1 scripts/bench_train.sh 30 3 sts
# The run header's line on the CPU and its kernels, from one step.
sed -e "s#\${STPIPE_DATA:-../../shared/data}#$SHARED/data#" \
    -e '/^evaluator/d' -e '/evaluate:/d' -e '/^save/d' -e '/^expect/d' \
    pipelines/sts.stp >"$TMP/one_step.stp"
"$BIN" --model-path "$SHARED/models" run "$TMP/one_step.stp" --max-steps 1 --quiet \
    --run-dir "$TMP/one_step" >/dev/null 2>&1 || true
header=$(grep -o '"note":"cpu:[^"]*' "$TMP/one_step/metrics.jsonl" 2>/dev/null | head -1 | cut -d'"' -f4 || true)
if grep -qw avx512_bf16 /proc/cpuinfo; then
    bench sts-bf16 env PRECISION=bf16 scripts/bench_train.sh 30 "$RUNS" sts
    bench mnrl-bf16 env PRECISION=bf16 scripts/bench_train.sh 20 3 mnrl
fi

./target/release/examples/sgemm_peak >"$OUT/sgemm_peak.log" 2>&1 || true
peak=$(grep -o '^peak: [0-9.]*' "$OUT/sgemm_peak.log" | cut -d' ' -f2 || true)
gflop=""
if [ -x "$PYTHON" ]; then
    gflop=$("$PYTHON" scripts/train_flops.py --shared "$SHARED" 2>/dev/null \
        | grep -o '"gflop_per_pair_real_tokens": [0-9.]*' | cut -d' ' -f2 || true)
fi
sts=$(grep -o '^stpipe median: [0-9.]*' "$OUT/sts-fp32.log" | cut -d' ' -f3 || true)

echo
echo "## $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) (family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | xargs), model $(grep -m1 '^model\s' /proc/cpuinfo | cut -d: -f2 | xargs))"
echo "${header:-cpu: (no header line: the one-step run failed, see stpipe run)}"
echo
echo "| benchmark | medians (stpipe; python) | ratio | load before / after |"
echo "|---|---|---|---|"
printf '%s\n' "${summary[@]}"
echo
if [ -n "$peak" ] && [ -n "$gflop" ] && [ -n "$sts" ]; then
    python3 - "$sts" "$gflop" "$peak" <<'PY'
import sys
pairs, gflop, peak = map(float, sys.argv[1:])
done = pairs * gflop
print(f"FLOP utilisation (fp32 sts): {pairs:.2f} pairs/s x {gflop} GFLOP = {done:.1f} GFLOP/s, "
      f"{100 * done / peak:.0f}% of the sgemm peak {peak:.1f} GFLOP/s (examples/sgemm_peak)")
PY
else
    echo "FLOP utilisation: not computed (sgemm peak '${peak}', GFLOP per pair '${gflop}', sts median '${sts}')"
fi
echo "logs: $OUT"
