#!/usr/bin/env python3
"""The summary lines of the benchmark scripts: the median of each side's
runs, its peak memory when given, and the ratio stpipe/python.

    python3 scripts/medians.py --unit "examples/s" --stpipe "1 2 3" --python "1 2 3" \
        [--stpipe-kb "..." --python-kb "..."] [--no-ratio]

Values are space-separated; an empty --python (Python not installed) prints
stpipe's line alone.
"""
import argparse
import statistics


def nums(s):
    return [float(x) for x in s.split()] if s else []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--unit", required=True)
    ap.add_argument("--stpipe", required=True)
    ap.add_argument("--python", default="")
    ap.add_argument("--stpipe-kb", default="")
    ap.add_argument("--python-kb", default="")
    ap.add_argument("--no-ratio", action="store_true")
    a = ap.parse_args()
    medians = {}
    for name, vals, kb in (("stpipe", a.stpipe, a.stpipe_kb), ("python", a.python, a.python_kb)):
        v = nums(vals)
        if not v:
            continue
        medians[name] = statistics.median(v)
        mem = f", peak RSS {statistics.median(nums(kb)) / 1024:.0f} MiB" if kb else ""
        print(f"{name} median: {medians[name]:.2f} {a.unit} over {len(v)} runs{mem}")
    if not a.no_ratio and len(medians) == 2:
        print(f"ratio stpipe/python: {medians['stpipe'] / medians['python']:.2f}")


if __name__ == "__main__":
    main()
