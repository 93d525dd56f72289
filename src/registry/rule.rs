//! Constraints between a component's arguments ([`Rule`]), as entries
//! declare them; `check/rules.rs` and the model and data checks enforce
//! them.

use super::Range;

/// A constraint between arguments, checked by `stpipe check`.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// At least one of these `Bool` arguments must be true.
    AnyTrue(&'static [&'static str]),
    /// The first number must be below the second (when both are given).
    Less(&'static str, &'static str),
    /// At most one of these arguments may be given.
    OneOf(&'static [&'static str]),
    /// When the `Bool` argument is true, the number must lie in the range.
    WhenTrue(&'static str, &'static str, Range),
    /// The string argument (when given) must be a key of the `StrMap` one.
    KeyOf(&'static str, &'static str),
    /// At least one of these numbers must be above 0.
    AnyPositive(&'static [&'static str]),
    /// The two list arguments (when both are given) must be equally long.
    SameLength(&'static str, &'static str),
    /// The count (or every count of the list) may not exceed the width of
    /// the model's sentence embeddings: a truncation dimension. A loss
    /// wrapper with such a rule truncates embeddings, so it cannot wrap a
    /// loss whose classifier is sized for the full width.
    AtMostWidth(&'static str),
    /// The first argument, when written, has an effect only with the
    /// second given (and true, for a `Bool`): writing it otherwise is an
    /// error rather than silently ignored.
    Needs(&'static str, &'static str),
    /// The count may not exceed the model's number of Transformer layers.
    AtMostLayers(&'static str),
    /// A loss wrapper that needs the whole batch's embeddings of every
    /// layer at once: the loss it wraps may not run under GradCache.
    Uncached,
    /// The loss trains an independent copy of the model beside it
    /// (ContrastiveTension): twice the model's weights and optimizer state,
    /// and it cannot be wrapped (it embeds the texts itself).
    CopiesModel,
    /// The loss decodes the texts with a decoder that shares the model's
    /// weights (TSDAE): the model's Transformer must be one of these
    /// architectures (`model_type`), and the loss cannot be wrapped.
    TiedDecoder(&'static [&'static str]),
    /// The argument, when written, has an effect only on data with one
    /// text column (a loss that makes its inputs from single sentences):
    /// writing it for pairs is an error rather than silently ignored.
    OneTextColumn(&'static str),
}

impl Rule {
    /// The rule in words, for the reference.
    pub fn describe(&self) -> String {
        match *self {
            Rule::AnyTrue(names) => format!("at least one of `{}` is true", names.join("`, `")),
            Rule::Less(a, b) => format!("`{a}` is below `{b}`"),
            Rule::OneOf(names) => format!("at most one of `{}` is given", names.join("`, `")),
            Rule::WhenTrue(flag, num, range) => {
                format!("with `{flag}: true`, `{num}` is {}", range.describe())
            }
            Rule::KeyOf(key, map) => format!("`{key}` is a key of `{map}`"),
            Rule::SameLength(a, b) => format!("`{a}` has as many values as `{b}`"),
            Rule::AnyPositive(names) => {
                format!("at least one of `{}` is above 0", names.join("`, `"))
            }
            Rule::AtMostWidth(name) => {
                format!("`{name}` is at most the model's embedding width")
            }
            Rule::Uncached => "the wrapped loss does not run under GradCache".to_string(),
            Rule::Needs(a, b) => format!("`{a}` is written only together with `{b}`"),
            Rule::AtMostLayers(name) => format!("`{name}` is at most the model's number of layers"),
            Rule::CopiesModel => {
                "trains a copy of the model beside it (twice its memory); cannot be wrapped"
                    .to_string()
            }
            Rule::OneTextColumn(name) => {
                format!("`{name}` is written only for data with one text column")
            }
            Rule::TiedDecoder(types) => format!(
                "the model's Transformer is one of `{}`; cannot be wrapped",
                types.join("`, `")
            ),
        }
    }
}
