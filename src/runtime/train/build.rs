//! Building runtime objects from the checked pipeline through the
//! catalogue: a model's module chain, an objective's loss, an evaluator,
//! a stage's optimizer and schedule. Every constructor is the one the
//! component's registry entry names, called with the arguments the
//! checker resolved.

use std::path::Path;

use candle_core::Device;

use crate::check::types::{self as ct, Objective};
use crate::hub::ModelSearch;
use crate::registry::catalogue;
use crate::runtime::eval::Evaluator;
use crate::runtime::loss::{Loss, LossCx};
use crate::runtime::modules::ModuleCx;
use crate::runtime::SentenceEncoder;

use super::error::{Result, RunError};
use super::optim::UpdateRule;
use super::rng::Rng;
use super::schedule::LrSchedule;

fn unregistered(what: &str, name: &str) -> RunError {
    RunError::Invalid(format!("{what} `{name}` is not in the catalogue"))
}

fn arg_error(e: crate::registry::ArgError) -> RunError {
    RunError::Invalid(e.to_string())
}

/// Build a model: its base (a Transformer or a whole saved model), then
/// the modules the chain adds, new ones initialised from `seed`.
pub fn build_model(
    model: &ct::Model,
    search: &ModelSearch,
    base_dir: &Path,
    seed: u64,
) -> Result<SentenceEncoder> {
    let device = Device::Cpu;
    let mut chain: Vec<Box<dyn crate::runtime::Module>> = Vec::new();
    for (i, m) in model.modules.iter().enumerate() {
        let entry = catalogue::module(&m.kind).ok_or_else(|| unregistered("module", &m.kind))?;
        let in_dim = chain.iter().rev().find_map(|x| x.out_dim()).unwrap_or(0);
        let cx = ModuleCx {
            in_dim,
            seed: Rng::derived(seed, &format!("{}.module{i}", model.name)).next_u64(),
            device: &device,
            search,
            base_dir,
        };
        chain.extend((entry.build)(&m.args, &cx)?);
    }
    Ok(SentenceEncoder::new(chain)?)
}

/// Build the loss of an objective that trains `model` (as it stands now).
pub fn build_loss(o: &Objective, model: &SentenceEncoder, seed: u64) -> Result<Box<dyn Loss>> {
    let entry = catalogue::loss(&o.loss).ok_or_else(|| unregistered("loss", &o.loss))?;
    let cx = LossCx {
        objective: o.name.clone(),
        dim: model.dim(),
        seed,
        device: Device::Cpu,
        model: Some(model),
    };
    Ok((entry.build)(&o.args, &cx)?)
}

/// Build an evaluator.
pub fn build_evaluator(e: &ct::Evaluator) -> Result<Box<dyn Evaluator>> {
    let entry = catalogue::evaluator(&e.kind).ok_or_else(|| unregistered("evaluator", &e.kind))?;
    (entry.build)(&e.args).map_err(arg_error)
}

/// Build a stage's optimizer rule.
pub fn build_optimizer(stage: &ct::Stage) -> Result<Box<dyn UpdateRule>> {
    let c = &stage.optimizer;
    let entry = catalogue::optimizer(&c.name).ok_or_else(|| unregistered("optimizer", &c.name))?;
    (entry.build)(&c.args).map_err(arg_error)
}

/// Build a stage's schedule shape.
pub fn build_schedule(stage: &ct::Stage) -> Result<Box<dyn LrSchedule>> {
    let c = &stage.scheduler;
    let entry = catalogue::scheduler(&c.name).ok_or_else(|| unregistered("scheduler", &c.name))?;
    (entry.build)(&c.args).map_err(arg_error)
}
