# Sourced by the training benchmarks (after `cd` to the repository): the
# pipelines of their recipes that are not files of pipelines/.

# mnrl_pipeline FILE SHARED PRECISION: MultipleNegativesRankingLoss at
# batch 64 on the SNLI validation triplets (anchor, entailment,
# contradiction) from SHARED/data, all-MiniLM-L6-v2 with mean pooling,
# max_seq_length 128, in PRECISION (fp32 or bf16); the counterpart of
# scripts/python_mnrl_train.py.
mnrl_pipeline() {
    cat >"$1" <<STP
model sbert = Transformer("sentence-transformers/all-MiniLM-L6-v2", max_seq_length: 128)
            -> Pooling(mean)
data nli_pairs = tsv("$2/data/snli/validation.tsv", header: true)
                 { premise: col("premise"), hypothesis: col("hypothesis"), label: col("label") }
data nli_triplets = triplets(nli_pairs, by: premise, positive: 0, negative: 2)
objective mnrl = MultipleNegativesRankingLoss(sbert, scale: 20.0, similarity: cosine)
                 on nli_triplets (batch_size: 64, sampler: no_duplicates)
train sbert {
  objectives: [mnrl]
  epochs: 1
  optimizer: AdamW(lr: 2e-5)
  scheduler: WarmupLinear(warmup: 10%)
  seed: 42
  precision: $3
}
STP
}
