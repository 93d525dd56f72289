//! Model modules: the links of a `model` chain.

use super::{maybe, opt, req, ArgSpec, ArgType::*, Component, Family};

pub const POOLING_MODES: &[&str] = &[
    "cls",
    "mean",
    "max",
    "mean_sqrt_len_tokens",
    "weightedmean",
    "lasttoken",
];

pub const ACTIVATIONS: &[&str] = &["tanh", "identity", "relu", "gelu", "sigmoid"];

pub const ALL: &[Component] = &[
    Component {
        name: "Transformer",
        family: Family::Module,
        doc: "A Hugging Face transformer (BERT family) producing token embeddings; its width is `hidden_size` from the model's config.json. Must start a chain.",
        args: &[
            req("model", Str, "path of a model directory, or a Hub id (`sentence-transformers/all-MiniLM-L6-v2`)"),
            maybe("max_seq_length", Count, "truncate inputs to this many tokens (default: the model's own setting)"),
            opt("do_lower_case", Bool, "false", "lower-case inputs before tokenizing"),
        ],
        columns: None,
        metrics: &[],
    },
    Component {
        name: "load",
        family: Family::Module,
        doc: "A whole saved sentence-transformers model (directory with modules.json, or a Hub id). Must start a chain; more modules may follow it.",
        args: &[req("model", Str, "path of a saved model directory, or a Hub id")],
        columns: None,
        metrics: &[],
    },
    Component {
        name: "Pooling",
        family: Family::Module,
        doc: "Token embeddings to one sentence embedding. Several modes concatenate (`Pooling(cls, mean, max)`), multiplying the width.",
        args: &[ArgSpec {
            name: "mode",
            ty: Choice(POOLING_MODES),
            required: false,
            default: Some("mean"),
            variadic: true,
            doc: "pooling mode(s), positional or as a list",
        }],
        columns: None,
        metrics: &[],
    },
    Component {
        name: "Dense",
        family: Family::Module,
        doc: "A fully connected layer with an activation; its input width is the width of what precedes it.",
        args: &[
            req("out_features", Count, "output width"),
            opt("activation", Choice(ACTIVATIONS), "tanh", "activation function"),
            opt("bias", Bool, "true", "learn a bias"),
        ],
        columns: None,
        metrics: &[],
    },
    Component {
        name: "Normalize",
        family: Family::Module,
        doc: "Scales sentence embeddings to unit length.",
        args: &[],
        columns: None,
        metrics: &[],
    },
    Component {
        name: "LayerNorm",
        family: Family::Module,
        doc: "Layer normalisation of sentence embeddings.",
        args: &[],
        columns: None,
        metrics: &[],
    },
    Component {
        name: "Dropout",
        family: Family::Module,
        doc: "Dropout on sentence embeddings during training.",
        args: &[opt("p", Prob, "0.1", "dropout probability")],
        columns: None,
        metrics: &[],
    },
];
