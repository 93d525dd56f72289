//! Optimizers and learning-rate schedulers.

use super::{opt, ArgType::*, Component, Family};

pub const OPTIMIZERS: &[Component] = &[
    Component {
        name: "AdamW",
        family: Family::Optimizer,
        doc: "Adam with decoupled weight decay (not applied to biases and LayerNorm weights), as in sentence-transformers.",
        args: &[
            opt("lr", Float, "2e-5", "learning rate"),
            opt("weight_decay", Float, "0.01", "decoupled weight decay"),
            opt("betas", FloatPair, "[0.9, 0.999]", "moment decay rates"),
            opt("eps", Float, "1e-8", "numerical stabiliser"),
        ],
        columns: None,
        metrics: &[],
    },
    Component {
        name: "Adam",
        family: Family::Optimizer,
        doc: "Adam with L2 weight decay.",
        args: &[
            opt("lr", Float, "2e-5", "learning rate"),
            opt("weight_decay", Float, "0.0", "L2 penalty"),
            opt("betas", FloatPair, "[0.9, 0.999]", "moment decay rates"),
            opt("eps", Float, "1e-8", "numerical stabiliser"),
        ],
        columns: None,
        metrics: &[],
    },
    Component {
        name: "SGD",
        family: Family::Optimizer,
        doc: "Stochastic gradient descent with optional momentum.",
        args: &[
            opt("lr", Float, "0.01", "learning rate"),
            opt("momentum", Float, "0.0", "momentum factor"),
            opt("weight_decay", Float, "0.0", "L2 penalty"),
        ],
        columns: None,
        metrics: &[],
    },
];

const WARMUP: super::ArgSpec = opt(
    "warmup",
    StepsOrPercent,
    "0",
    "warm-up length: steps (`100`) or a share of all steps (`10%`)",
);

pub const SCHEDULERS: &[Component] = &[
    Component {
        name: "Constant",
        family: Family::Scheduler,
        doc: "Constant learning rate.",
        args: &[],
        columns: None,
        metrics: &[],
    },
    Component {
        name: "WarmupConstant",
        family: Family::Scheduler,
        doc: "Linear warm-up from 0, then constant.",
        args: &[WARMUP],
        columns: None,
        metrics: &[],
    },
    Component {
        name: "WarmupLinear",
        family: Family::Scheduler,
        doc: "Linear warm-up from 0, then linear decay to 0 (the sentence-transformers default).",
        args: &[WARMUP],
        columns: None,
        metrics: &[],
    },
    Component {
        name: "WarmupCosine",
        family: Family::Scheduler,
        doc: "Linear warm-up, then cosine decay to 0.",
        args: &[WARMUP],
        columns: None,
        metrics: &[],
    },
    Component {
        name: "WarmupCosineWithHardRestarts",
        family: Family::Scheduler,
        doc: "Linear warm-up, then cosine decay with hard restarts.",
        args: &[
            WARMUP,
            opt("num_cycles", Count, "1", "number of cosine cycles"),
        ],
        columns: None,
        metrics: &[],
    },
];
