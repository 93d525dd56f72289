"""Writes the Parquet fixtures of tests/parquet_data.rs with pyarrow (the
library pandas and the Hugging Face `datasets` library write Parquet with).

    /work/pyref/bin/python scripts/make_parquet_fixtures.py

* `qa-CODEC.parquet`, one per codec pyarrow writes (and none): 50 rows of
  `query` ("q{i} é"), `answer` ("a{i}"), `score` (i / 50), in row groups of
  16 rows. The test compares them with the same rows as JSON Lines.
* `hard-negatives.parquet`: the list layout of hard-negative data sets
  (FlagEmbedding's `query`, `pos`, `neg`, with teacher `scores`: the
  positive's, then each negative's), 10 rows in row groups of 4. Row 7 (in
  row group 1) has two negatives where the others have three or four.
* `nulls.parquet`: 5 rows of `query`, `answer`; row 4's answer is null.
* `odd.parquet`: 4 rows of `text` (binary, not a string type; row 2 is not
  UTF-8), `n` (int64, read as text) and `score` (float32; row 3 is NaN).
"""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "parquet"


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    qa = pa.table(
        {
            "query": [f"q{i} \u00e9" for i in range(50)],
            "answer": [f"a{i}" for i in range(50)],
            "score": [i / 50 for i in range(50)],
        }
    )
    for codec in ["snappy", "zstd", "gzip", "lz4", "brotli", "none"]:
        pq.write_table(qa, OUT / f"qa-{codec}.parquet", compression=codec, row_group_size=16)

    rows = []
    for i in range(10):
        n = 2 if i == 6 else 3 + i % 2
        rows.append(
            {
                "query": f"query {i}",
                "pos": [f"positive {i}"],
                "neg": [f"negative {i}.{j}" for j in range(n)],
                "scores": [9.0 - i * 0.1] + [5.0 - j - i * 0.1 for j in range(n)],
            }
        )
    schema = pa.schema(
        [
            ("query", pa.string()),
            ("pos", pa.list_(pa.string())),
            ("neg", pa.list_(pa.string())),
            ("scores", pa.list_(pa.float64())),
        ]
    )
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), OUT / "hard-negatives.parquet", row_group_size=4)

    nulls = pa.table({"query": [f"q{i}" for i in range(5)], "answer": ["a0", "a1", "a2", None, "a4"]})
    pq.write_table(nulls, OUT / "nulls.parquet")

    odd = pa.table(
        {
            "text": pa.array([b"plain", b"\xff\xfe", b"caf\xc3\xa9", b"last"], type=pa.binary()),
            "n": pa.array([1, 2, 3, 4], type=pa.int64()),
            "score": pa.array([0.5, 0.25, float("nan"), 1.0], type=pa.float32()),
        }
    )
    pq.write_table(odd, OUT / "odd.parquet")


if __name__ == "__main__":
    main()
