"""The STS benchmark TSV as the reference scripts read it.

No header, no quoting; columns genre, file, year, id, score (0..5), sentence1,
sentence2, sometimes followed by extra columns that are ignored.
"""
from __future__ import annotations

from pathlib import Path


def read_sts(path: Path, limit: int | None = None) -> tuple[list[str], list[str], list[float]]:
    """sentence1, sentence2 and score / 5 of the first `limit` rows (all by default)."""
    s1: list[str] = []
    s2: list[str] = []
    scores: list[float] = []
    with open(path, encoding="utf8", newline="\n") as f:
        for line in f:
            line = line.rstrip("\n").rstrip("\r")
            if not line:
                continue
            cols = line.split("\t")
            if len(cols) < 7:
                raise SystemExit(f"short row in {path}: {line!r}")
            scores.append(float(cols[4]) / 5.0)
            s1.append(cols[5])
            s2.append(cols[6])
            if limit is not None and len(s1) == limit:
                break
    return s1, s2, scores
