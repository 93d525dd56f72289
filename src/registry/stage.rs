//! Settings of a train stage and options of an objective.

use super::choices::{Mixing, Precision, Sampler};
use super::{maybe, opt, req, ArgType::*, Component, Family};

pub const STAGE: Component = Component {
    name: "train",
    family: Family::Stage,
    doc: "A training stage of one model. Stages run in file order; a later stage of the same model fine-tunes the result of the earlier one. Besides the settings below, `evaluate: EVALUATOR or [EVALUATORS] every N steps` evaluates during training (always also at each epoch end), and `checkpoint: every N steps, keep K` writes resumable checkpoints.",
    args: &[
        req("objectives", Objectives, "the objectives trained (several = multi-task)"),
        opt("epochs", Count, "1", "passes over the data (ignored when max_steps is set)").at_least(1.0),
        maybe("max_steps", Count, "stop after this many optimizer steps").at_least(1.0),
        opt("optimizer", OptimizerCall, "AdamW()", "the optimizer and its parameters"),
        opt("scheduler", SchedulerCall, "WarmupLinear(warmup: 0)", "the learning-rate schedule"),
        opt("max_grad_norm", Float, "1.0", "gradient clipping norm (0: no clipping)").at_least(0.0),
        opt("gradient_accumulation", Count, "1", "batches accumulated per optimizer step").at_least(1.0),
        opt("seed", Int, "42", "random seed (shuffling, dropout, initialisation)"),
        opt("mixing", Choice(Mixing::NAMES), "round_robin", "how batches of several objectives interleave: one of each in turn, or in proportion to their sizes"),
        opt("precision", Choice(Precision::NAMES), "fp32", "`bf16`: the training step's linear layers multiply operands rounded to bf16 (forward and backward) and sum in f32, like the Trainer's `bf16=True`; weights, optimizer, norms, softmax and losses stay f32, and evaluation runs in f32. Faster only on CPUs with AVX512-BF16 (the run header says which); elsewhere the same rounding over f32 products is slower than `fp32`"),
        opt("evaluate_at_start", Bool, "true", "run the stage's evaluators once before the first step (logged as step 0, the baseline the summary compares with; never a candidate for `best by`)"),
    ],
    ..Component::BASE
};

pub const OBJECTIVE_OPTIONS: Component = Component {
    name: "objective",
    family: Family::ObjectiveOptions,
    doc: "How an objective's data is batched.",
    args: &[
        opt("batch_size", Count, "32", "examples per batch").at_least(1.0),
        opt("shuffle", Bool, "true", "shuffle the data every epoch"),
        opt("sampler", Choice(Sampler::NAMES), "default", "`no_duplicates`: no text twice in a batch (for in-batch negatives); `group_by_label`: batches hold several examples of each label"),
        maybe("prompts", StrMap, "a prompt per text column, `{anchor: \"query: \", positive: \"passage: \"}`, prepended before tokenizing (sentence-transformers' training `prompts`)"),
    ],
    ..Component::BASE
};
