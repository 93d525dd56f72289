//! Will the pipeline fit in memory? An estimate of each stage's needs
//! (weights, gradients and optimizer state of the model trained, the
//! frozen models it reads, the activations of its largest batch), checked
//! against the memory the machine has available, so that a pipeline that
//! cannot fit is refused with the figures instead of aborting mid-run.
//! On machines where the available memory cannot be read, nothing is
//! refused.

use super::Checker;
use crate::check::types::{Model, Stage};
use crate::diag::Diag;
use crate::runtime::modules::transformer::{inspect, TransformerInfo};

const GIB: f64 = (1u64 << 30) as f64;

/// The memory available to the process: the machine's (`MemAvailable`),
/// within the cgroup's limit (containers) and the address-space limit
/// (`ulimit -v`) when they are lower.
fn available_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |text: &str, key: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(key))?;
        Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
    };
    let mut available = field(&meminfo, "MemAvailable:")?;
    let read_u64 =
        |p: &str| -> Option<u64> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
    if let (Some(max), Some(current)) = (
        read_u64("/sys/fs/cgroup/memory.max"),
        read_u64("/sys/fs/cgroup/memory.current"),
    ) {
        available = available.min(max.saturating_sub(current));
    }
    if let Some(limit) = address_space_limit() {
        let used = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|t| field(&t, "VmSize:"))
            .unwrap_or(0);
        available = available.min(limit.saturating_sub(used));
    }
    Some(available)
}

/// The soft `RLIMIT_AS` (`ulimit -v`), when one is set.
fn address_space_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct it is given.
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut r) } == 0;
        // rlim_t is u64 on 64-bit Linux, narrower elsewhere.
        #[allow(clippy::unnecessary_cast)]
        let cur = r.rlim_cur as u64;
        (ok && r.rlim_cur != libc::RLIM_INFINITY).then_some(cur)
    }
    #[cfg(not(unix))]
    None
}

/// A model's trainable parameters and its Transformer's shape, when its
/// files are local.
fn shape(m: &Model) -> (u64, Option<TransformerInfo>) {
    let mut params = 0u64;
    let mut info = None;
    for module in &m.modules {
        match (module.kind.as_str(), &module.dir) {
            ("Transformer" | "load", Some(dir)) => {
                let td = if module.kind == "load" {
                    super::models::saved_transformer_dir(dir)
                } else {
                    Some(dir.clone())
                };
                if let Some(i) = td.and_then(|d| inspect(&d).ok()) {
                    params += i.params;
                    info = Some(i);
                }
            }
            ("Dense", _) => {
                if let (Some(i), Some(o)) = (module.in_dim, module.out_dim) {
                    params = params.saturating_add((i as u64).saturating_mul(o as u64) + o as u64);
                }
            }
            _ => {}
        }
    }
    (params, info)
}

/// The texts a cached loss embeds at a time (its `mini_batch_size`), for
/// an objective whose loss (or the loss its wrappers wrap) is cached.
fn cached_rows(o: &crate::check::types::Objective) -> Option<u64> {
    let (_, args) = o.base_loss();
    let m = args.values().get("mini_batch_size")?.as_i64()?;
    u64::try_from(m).ok().map(|m| m.max(1))
}

impl Checker<'_> {
    pub(crate) fn check_memory(&mut self) {
        let Some(available) = available_bytes() else {
            return;
        };
        let too_big = self.check_model_weights(available);
        let stages: Vec<Stage> = self.out.stages().cloned().collect();
        for st in stages {
            let Some(model) = self.out.model(&st.model).cloned() else {
                continue;
            };
            if !too_big.contains(&model.name) {
                self.check_stage_memory(&st, &model, available);
            }
        }
    }

    /// Every model's weights, trained or not (an encoder, a teacher),
    /// against the memory available; the models too big.
    fn check_model_weights(&mut self, available: u64) -> Vec<String> {
        let models = self.out.models.clone();
        let mut too_big = Vec::new();
        for m in &models {
            let weights = shape(m).0.saturating_mul(4);
            if weights > available {
                too_big.push(m.name.clone());
                self.err(
                    Diag::error(
                        "out-of-memory",
                        m.span,
                        format!(
                            "model `{}` has about {:.1} GiB of weights; this machine has {:.1} GiB available",
                            m.name,
                            weights as f64 / GIB,
                            available as f64 / GIB
                        ),
                    )
                    .help("narrow its Dense layers or use a smaller model"),
                );
            }
        }
        too_big
    }

    /// A stage's training state, frozen models and activations against
    /// the memory available.
    fn check_stage_memory(&mut self, st: &Stage, model: &Model, available: u64) {
        let (params, info) = shape(model);
        let state = self.state_bytes(st, model, params);
        let frozen: u64 = st
            .teachers
            .iter()
            .filter_map(|t| self.out.model(t))
            .map(|t| shape(t).0.saturating_mul(4))
            .sum();
        let activations = info.map_or(0, |i| self.activation_bytes(st, model, &i));
        let need = state.saturating_add(frozen).saturating_add(activations);
        if need <= available {
            return;
        }
        self.err(
            Diag::error(
                "out-of-memory",
                st.span,
                format!(
                    "training `{}` needs about {:.1} GiB ({:.1} GiB of weights, gradients and optimizer state, {:.1} GiB of activations, {:.1} GiB of frozen models); this machine has {:.1} GiB available",
                    st.model,
                    need as f64 / GIB,
                    state as f64 / GIB,
                    activations as f64 / GIB,
                    frozen as f64 / GIB,
                    available as f64 / GIB
                ),
            )
            .help("lower batch_size or max_seq_length, narrow a Dense layer, or use a smaller model; for in-batch negatives, CachedMultipleNegativesRankingLoss keeps the batch and bounds memory by its mini_batch_size"),
        );
    }

    /// Weights, gradients, two optimizer moments: f32 each; twice for a
    /// loss that trains a copy of the model; one more gradient per column
    /// that runs backward beside the first.
    fn state_bytes(&self, st: &Stage, model: &Model, params: u64) -> u64 {
        let objectives = || st.objectives.iter().filter_map(|o| self.out.objective(o));
        let copies = objectives().any(|o| {
            crate::registry::lookup(crate::registry::Family::Loss, &o.loss).is_some_and(|c| {
                c.rules
                    .iter()
                    .any(|r| matches!(r, crate::registry::Rule::CopiesModel))
            })
        });
        // With the explicit step (the BERT family on the CPU), the columns
        // of a batch run backward side by side, each after the first into
        // a gradient buffer of its own.
        let explicit = model
            .model_type
            .as_deref()
            .is_some_and(|t| crate::runtime::arch::EXPLICIT_STEP_TYPES.contains(&t));
        let side_grads = if explicit {
            objectives()
                .filter(|o| cached_rows(o).is_none())
                .filter_map(|o| self.out.data_source(&o.data))
                .map(|d| d.text_columns().len().saturating_sub(1) as u64)
                .max()
                .unwrap_or(0)
        } else {
            0
        };
        params
            .saturating_mul(if copies { 32 } else { 16 })
            .saturating_add(params.saturating_mul(4).saturating_mul(side_grads))
    }

    /// The activations the largest batch of the stage's objectives keeps
    /// for the backward.
    fn activation_bytes(&self, st: &Stage, model: &Model, i: &TransformerInfo) -> u64 {
        let seq = model.modules[0]
            .args
            .values()
            .get("max_seq_length")
            .and_then(|v| v.as_i64())
            .map_or(i.max_seq_length, |n| n as usize) as u64;
        let mut activations = 0u64;
        for o in st.objectives.iter().filter_map(|o| self.out.objective(o)) {
            let texts = self
                .out
                .data_source(&o.data)
                .map_or(2, |d| d.text_columns().len().max(1)) as u64;
            // A cached (GradCache) loss embeds `mini_batch_size` texts at a
            // time; the others the whole batch at once.
            let rows = match cached_rows(o) {
                Some(m) => m.min(o.batch_size as u64),
                None => (o.batch_size as u64).saturating_mul(texts),
            };
            // Per token and layer, kept for the backward: about 16
            // hidden-wide tensors (projections, attention output, FFN,
            // norms, dropout masks) and 3 attention maps.
            let per_token = 16 * i.hidden_size as u64 + 3 * i.num_heads as u64 * seq;
            let a = rows
                .saturating_mul(seq)
                .saturating_mul(i.num_layers as u64)
                .saturating_mul(per_token)
                .saturating_mul(4);
            activations = activations.max(a);
        }
        activations
    }
}
