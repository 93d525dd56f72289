#!/usr/bin/env python3
"""Read a `stpipe run --report junit.xml` file with junitparser (outside the
product) and print, per suite and in total, the counts a CI system shows.

    pip install junitparser
    scripts/check_junit.py reports/junit.xml [--expect TESTS,FAILURES,ERRORS,SKIPPED]

With --expect, exits 1 unless the totals junitparser computes from the
test cases themselves (not the attributes stpipe wrote) are those, and the
attributes agree with them.
"""
import argparse
import sys

from junitparser import Error, Failure, JUnitXml, Skipped


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--expect", help="TESTS,FAILURES,ERRORS,SKIPPED")
    a = ap.parse_args()
    xml = JUnitXml.fromfile(a.file)
    totals = [0, 0, 0, 0]
    ok = True
    for suite in xml:
        counted = [0, 0, 0, 0]
        for case in suite:
            counted[0] += 1
            for r in case.result:
                if isinstance(r, Failure):
                    counted[1] += 1
                elif isinstance(r, Error):
                    counted[2] += 1
                elif isinstance(r, Skipped):
                    counted[3] += 1
        written = [suite.tests, suite.failures, suite.errors, suite.skipped]
        flag = "" if counted == written else f"  (attributes say {written})"
        ok &= counted == written
        print(f"{suite.name:8} tests={counted[0]} failures={counted[1]} errors={counted[2]} skipped={counted[3]}{flag}")
        for case in suite:
            for r in case.result:
                print(f"    {type(r).__name__.lower()}: {case.name}: {r.message}")
        totals = [t + c for t, c in zip(totals, counted)]
    print(f"total    tests={totals[0]} failures={totals[1]} errors={totals[2]} skipped={totals[3]}")
    if a.expect:
        want = [int(x) for x in a.expect.split(",")]
        if want != totals:
            print(f"expected {want}", file=sys.stderr)
            ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
