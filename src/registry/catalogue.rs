//! The catalogue: every registered component, by family, in reference
//! order. An entry is the component's description plus its constructor,
//! both defined in the component's own file; adding a component is that
//! file plus one line here (and `cargo run -q -- components >
//! docs/reference.md`).

use crate::data::{self, ReaderEntry};
use crate::registry::Component;
use crate::runtime::data::{mine, relevant_pairs, split, triplets, zip, TransformEntry};
use crate::runtime::eval::{self, EvaluatorEntry};
use crate::runtime::loss::{self, LossEntry};
use crate::runtime::modules::{self, ModuleEntry};
use crate::runtime::train::optim::{self, OptimizerEntry};
use crate::runtime::train::schedule::{self, SchedulerEntry};

/// Links of a model chain.
pub static MODULES: &[&ModuleEntry] = &[
    &modules::transformer::ENTRY,
    &modules::load::ENTRY,
    &modules::pooling::ENTRY,
    &modules::dense::ENTRY,
    &modules::normalize::ENTRY,
    &modules::layer_norm::ENTRY,
    &modules::dropout::ENTRY,
];

/// Training objectives.
pub static LOSSES: &[&LossEntry] = &[
    &loss::cosine_similarity::ENTRY,
    &loss::cosent::ENTRY,
    &loss::angle::ENTRY,
    &loss::softmax::ENTRY,
    &loss::mnrl::ENTRY,
    &loss::mnsrl::ENTRY,
    &loss::cached_mnrl::ENTRY,
    &loss::cached_mnsrl::ENTRY,
    &loss::mse::ENTRY,
    &loss::margin_mse::ENTRY,
    &loss::distill_kl_div::ENTRY,
    &loss::contrastive::ENTRY,
    &loss::online_contrastive::ENTRY,
    &loss::triplet::ENTRY,
    &loss::batch_hard_triplet::ENTRY,
    &loss::batch_hard_soft_margin_triplet::ENTRY,
    &loss::batch_semi_hard_triplet::ENTRY,
    &loss::batch_all_triplet::ENTRY,
    &loss::gor::ENTRY,
    &loss::gist::ENTRY,
    &loss::gist::CACHED_ENTRY,
    &loss::mega_batch_margin::ENTRY,
    &loss::matryoshka::ENTRY,
    &loss::matryoshka_2d::ENTRY,
    &loss::adaptive_layer::ENTRY,
    &loss::contrastive_tension::ENTRY,
    &loss::contrastive_tension_in_batch::ENTRY,
    &loss::denoising_auto_encoder::ENTRY,
];

/// Evaluators.
pub static EVALUATORS: &[&EvaluatorEntry] = &[
    &eval::similarity::ENTRY,
    &eval::label_accuracy::ENTRY,
    &eval::binary::ENTRY,
    &eval::triplet::ENTRY,
    &eval::information_retrieval::ENTRY,
    &eval::mse::ENTRY,
    &eval::translation::ENTRY,
    &eval::reranking::ENTRY,
    &eval::paraphrase_mining::ENTRY,
    &eval::sequential::ENTRY,
];

/// File readers.
pub static READERS: &[&ReaderEntry] = &[
    &data::tsv::ENTRY,
    &data::csv::ENTRY,
    &data::json::ENTRY,
    &data::parquet::ENTRY,
    &data::smart::ENTRY,
];

/// Sources built from sources.
pub static TRANSFORMS: &[&TransformEntry] = &[
    &zip::ENTRY,
    &triplets::ENTRY,
    &split::ENTRY,
    &relevant_pairs::ENTRY,
    &mine::ENTRY,
];

pub static OPTIMIZERS: &[&OptimizerEntry] = &[
    &optim::adamw::ENTRY,
    &optim::adam::ENTRY,
    &optim::sgd::ENTRY,
];

pub static SCHEDULERS: &[&SchedulerEntry] = &[
    &schedule::constant::ENTRY,
    &schedule::warmup_constant::ENTRY,
    &schedule::warmup_linear::ENTRY,
    &schedule::warmup_cosine::ENTRY,
    &schedule::warmup_cosine_with_hard_restarts::ENTRY,
];

/// Finds an entry by name, case-insensitively (`warmuplinear`).
macro_rules! finder {
    ($(#[$m:meta])* $fn:ident, $list:ident, $entry:ty) => {
        $(#[$m])*
        pub fn $fn(name: &str) -> Option<&'static $entry> {
            $list
                .iter()
                .copied()
                .find(|e| e.spec.name.eq_ignore_ascii_case(name))
        }
    };
}

finder!(/// The module named `name`.
    module, MODULES, ModuleEntry);
finder!(/// The loss named `name`.
    loss, LOSSES, LossEntry);
finder!(/// The evaluator named `name`.
    evaluator, EVALUATORS, EvaluatorEntry);
finder!(/// The reader named `name`.
    reader, READERS, ReaderEntry);
finder!(/// The transform named `name`.
    transform, TRANSFORMS, TransformEntry);
finder!(/// The optimizer named `name`.
    optimizer, OPTIMIZERS, OptimizerEntry);
finder!(/// The scheduler named `name`.
    scheduler, SCHEDULERS, SchedulerEntry);

/// Every component description of the catalogue, in reference order.
pub fn components() -> impl Iterator<Item = &'static Component> {
    MODULES
        .iter()
        .map(|e| &e.spec)
        .chain(LOSSES.iter().map(|e| &e.spec))
        .chain(EVALUATORS.iter().map(|e| &e.spec))
        .chain(READERS.iter().map(|e| &e.spec))
        .chain(TRANSFORMS.iter().map(|e| &e.spec))
        .chain(OPTIMIZERS.iter().map(|e| &e.spec))
        .chain(SCHEDULERS.iter().map(|e| &e.spec))
}
