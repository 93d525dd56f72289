//! `SentenceEncoder`: a chain of modules that turns texts into vectors.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};

use super::error::{Error, Result};
use super::modules::{Features, Module, Transformer};
use super::ops::Ctx;

/// Batches [`SentenceEncoder::encode`] runs at the same time (their
/// activations are in memory together).
const IN_FLIGHT: usize = 2;

/// A trainable parameter of the chain.
#[derive(Debug, Clone)]
pub struct NamedVar {
    /// Index of the module in the chain.
    pub module: usize,
    /// The module's type name (`Transformer`, `Dense`, ...).
    pub module_type: &'static str,
    /// The tensor's name in that module's weights file.
    pub name: String,
    pub var: Var,
}

/// Options of [`SentenceEncoder::encode`].
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    pub batch_size: usize,
    /// L2-normalise the output (on top of any Normalize module).
    pub normalize: bool,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Text prepended to every input (a resolved prompt; `None`: none).
    pub prompt: Option<String>,
    /// Embed as if the Transformer stopped after this many layers (the
    /// embeddings AdaptiveLayerLoss trains for that layer); `None`: all.
    pub layers: Option<usize>,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            batch_size: 32,
            normalize: false,
            progress: false,
            prompt: None,
            layers: None,
        }
    }
}

/// Transformer -> Pooling -> ... as one model.
#[derive(Debug)]
pub struct SentenceEncoder {
    modules: Vec<Box<dyn Module>>,
    device: Device,
}

impl SentenceEncoder {
    /// A chain whose first module is a [`Transformer`].
    pub fn new(modules: Vec<Box<dyn Module>>) -> Result<Self> {
        match modules.first() {
            Some(m) if m.as_any().is::<Transformer>() => {}
            _ => return Err(Error::Msg("the first module must be a Transformer".into())),
        }
        Ok(SentenceEncoder {
            modules,
            device: Device::Cpu,
        })
    }

    /// Load a sentence-transformers (or plain Hugging Face) directory.
    pub fn load(dir: &Path) -> Result<Self> {
        super::st_format::load_dir(dir, &Device::Cpu)
    }

    /// Resolve a path or Hub id (downloading when online) and load it.
    pub fn from_spec(
        spec: &str,
        search: &crate::hub::ModelSearch,
        base_dir: &Path,
    ) -> Result<Self> {
        let dir = super::download::resolve(spec, search, base_dir)?;
        Self::load(&dir)
    }

    /// Save in the legacy sentence-transformers layout, atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        super::st_format::save_dir(self, dir)
    }

    /// [`Self::save`], with extra files (name, content) in the model's root.
    pub fn save_with(&self, dir: &Path, extra: &[(&str, Vec<u8>)]) -> Result<()> {
        super::st_format::save::save_dir_with(self, dir, extra)
    }

    /// An independent copy: the same modules with weights of their own, as
    /// `copy.deepcopy` makes one (ContrastiveTensionLoss trains such a copy
    /// beside the model). The model is saved into a temporary directory
    /// and loaded back, so every module goes through the files it is saved
    /// as, which its round-trip tests check to be exact.
    pub fn deep_copy(&self) -> Result<Self> {
        let tmp = tempfile::Builder::new()
            .prefix("stpipe-copy-")
            .tempdir()
            .map_err(|source| Error::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        let dir = tmp.path().join("model");
        self.save(&dir)?;
        Self::load(&dir)
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn modules(&self) -> &[Box<dyn Module>] {
        &self.modules
    }

    /// The chain's modules, to extend them into another chain.
    pub fn into_modules(self) -> Vec<Box<dyn Module>> {
        self.modules
    }

    /// Append a module (e.g. a fresh Dense or a Normalize).
    pub fn push(&mut self, m: Box<dyn Module>) {
        self.modules.push(m);
    }

    /// The Transformer at the head of the chain.
    pub fn transformer(&self) -> &Transformer {
        // `new` guarantees the first module is a Transformer.
        self.modules
            .first()
            .and_then(|m| m.as_any().downcast_ref::<Transformer>())
            .unwrap_or_else(|| unreachable!("checked in SentenceEncoder::new"))
    }

    /// The Transformer, mutably (e.g. to change `max_seq_length`).
    pub fn transformer_mut(&mut self) -> &mut Transformer {
        self.modules
            .first_mut()
            .and_then(|m| m.as_any_mut().downcast_mut::<Transformer>())
            .unwrap_or_else(|| unreachable!("checked in SentenceEncoder::new"))
    }

    /// The width of the sentence embeddings.
    pub fn dim(&self) -> usize {
        self.modules
            .iter()
            .rev()
            .find_map(|m| m.out_dim())
            .unwrap_or(0)
    }

    /// Every trainable parameter of the chain, in module order.
    pub fn named_vars(&self) -> Vec<NamedVar> {
        let mut out = Vec::new();
        for (i, m) in self.modules.iter().enumerate() {
            for (name, var) in m.named_vars() {
                out.push(NamedVar {
                    module: i,
                    module_type: m.type_name(),
                    name,
                    var,
                });
            }
        }
        out
    }

    /// Just the vars, for an optimizer.
    pub fn vars(&self) -> Vec<Var> {
        self.named_vars().into_iter().map(|n| n.var).collect()
    }

    /// Tokenise texts with the Transformer's tokenizer.
    pub fn tokenize(&self, texts: &[&str]) -> Result<Features> {
        self.transformer().tokenize(texts, &self.device)
    }

    /// Run the chain on tokenised features.
    pub fn forward(&self, mut f: Features, ctx: &Ctx) -> Result<Features> {
        for m in &self.modules {
            f = m.forward(f, ctx)?;
        }
        Ok(f)
    }

    /// Sentence embeddings `[n, dim]` of one batch, in the graph of `ctx`
    /// (for training: call `backward` on a loss of the result).
    pub fn embed(&self, texts: &[&str], ctx: &Ctx) -> Result<Tensor> {
        self.embed_prompted(texts, None, ctx)
    }

    /// [`Self::embed`] with `prompt` prepended to every text, its tokens
    /// marked for Pooling's `include_prompt`.
    pub fn embed_prompted(
        &self,
        texts: &[&str],
        prompt: Option<&str>,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let f = self.forward(self.features(texts, prompt)?, ctx)?;
        f.sentence_embedding
            .ok_or_else(|| Error::Msg("the model produced no sentence embedding".into()))
    }

    /// The tokenised texts with `prompt` prepended, its tokens marked for
    /// Pooling's `include_prompt`.
    pub(crate) fn features(&self, texts: &[&str], prompt: Option<&str>) -> Result<Features> {
        Ok(match prompt.filter(|p| !p.is_empty()) {
            Some(p) => {
                let joined: Vec<String> = texts.iter().map(|t| format!("{p}{t}")).collect();
                let refs: Vec<&str> = joined.iter().map(String::as_str).collect();
                let mut f = self.tokenize(&refs)?;
                f.prompt_length = Some(self.transformer().prompt_length(p)?);
                f
            }
            None => self.tokenize(texts)?,
        })
    }

    /// [`Self::embed_prompted`], and the sentence embeddings the chain gives
    /// from the input of each encoder layer (the embedding layer's output,
    /// then each layer's output but the last's) in place of the
    /// Transformer's output: what AdaptiveLayerLoss trains. The final
    /// embeddings first, then one per earlier layer.
    pub fn embed_layers(
        &self,
        texts: &[&str],
        prompt: Option<&str>,
        ctx: &Ctx,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let f = self.features(texts, prompt)?;
        let mut states = Vec::new();
        let f = self
            .transformer()
            .forward_with_states(f, ctx, &mut states)?;
        let rest = |mut f: Features| -> Result<Tensor> {
            for m in &self.modules[1..] {
                f = m.forward(f, ctx)?;
            }
            f.sentence_embedding
                .ok_or_else(|| Error::Msg("the model produced no sentence embedding".into()))
        };
        let earlier = states
            .into_iter()
            .map(|s| {
                rest(Features {
                    token_embeddings: Some(s),
                    ..f.clone()
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((rest(f)?, earlier))
    }

    /// The sentence embeddings of the chain with the Transformer stopped
    /// after its first `k` layers (1 to its number of layers; all of them
    /// give [`Self::embed_prompted`]'s).
    pub fn embed_after(
        &self,
        texts: &[&str],
        prompt: Option<&str>,
        k: usize,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        // `earlier` holds the input of each of the model's layers: the
        // embedding layer's output, then layer i's output at index i.
        let (last, mut earlier) = self.embed_layers(texts, prompt, ctx)?;
        let layers = earlier.len();
        match k {
            0 => Err(Error::Msg(
                "a model cut after 0 layers has no encoder left".into(),
            )),
            k if k == layers => Ok(last),
            k if k < layers => Ok(earlier.swap_remove(k)),
            k => Err(Error::Msg(format!(
                "the model has {layers} layers; it cannot be cut after {k}"
            ))),
        }
    }

    /// The text of the prompt called `name`, or an error listing the
    /// model's prompts.
    pub fn prompt_named(&self, name: &str) -> Result<String> {
        let t = self.transformer();
        t.prompt(name).map(str::to_string).ok_or_else(|| {
            Error::Msg(format!(
                "the model has no prompt `{name}` ({})",
                t.prompt_names()
            ))
        })
    }

    /// The embedding rows of `texts[i]` for the `i` of `chunk`, in order.
    fn encode_batch<S: AsRef<str>>(
        &self,
        texts: &[S],
        chunk: &[usize],
        opts: &EncodeOptions,
        ctx: &Ctx,
    ) -> Result<Vec<Vec<f32>>> {
        let batch: Vec<&str> = chunk.iter().map(|&i| texts[i].as_ref()).collect();
        let emb = match opts.layers {
            None => self.embed_prompted(&batch, opts.prompt.as_deref(), ctx)?,
            Some(k) => self.embed_after(&batch, opts.prompt.as_deref(), k, ctx)?,
        };
        let mut emb = emb.to_dtype(DType::F32)?;
        if opts.normalize {
            emb = super::modules::normalize::l2_normalize(&emb)?;
        }
        Ok(emb.to_vec2::<f32>()?)
    }

    /// Encode many texts in inference mode: batches of texts of similar
    /// token counts (longest first), results in input order, `[n, dim]`
    /// f32.
    pub fn encode<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        opts: &EncodeOptions,
    ) -> Result<Tensor> {
        super::fp_env::ensure();
        let n = texts.len();
        let dim = self.dim();
        if n == 0 {
            return Ok(Tensor::zeros((0, dim), DType::F32, &self.device)?);
        }
        // Longest first, by tokens: a batch pads to its longest text, and
        // sorting by characters (as sentence-transformers does) leaves a
        // batch of 32 STS sentences ~30% padding where tokens leave ~2%.
        // Each text's embedding does not depend on its batch-mates.
        let refs: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        let tokens = self.transformer().tokenizer.token_counts(&refs)?;
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| std::cmp::Reverse((tokens[i], refs[i].len())));
        // The weights cannot change during the call: each is laid out for
        // the kernels once.
        let ctx = Ctx::eval_cached();
        let bar = if opts.progress {
            let pb = indicatif::ProgressBar::new(n as u64);
            pb.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} encoding [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            Some(pb)
        } else {
            None
        };
        let mut out = vec![0f32; n * dim];
        let budget = batch_token_budget(self.device.is_cpu())?;
        let batches = token_batches(&order, &tokens, opts.batch_size.max(1), budget);
        // The first batch runs alone: it lays the weights out, under the
        // cache's lock, which no two batches may wait on from rayon's
        // threads. Then batches run IN_FLIGHT at a time, one per thread,
        // where rayon has the threads: each keeps a core busy from start
        // to end instead of splitting every product over the cores and
        // waiting at each join. Each batch's embeddings are its own, so
        // the result does not depend on which ran beside which.
        let in_flight = rayon::current_num_threads().clamp(1, IN_FLIGHT);
        let mut at = 0;
        while at < batches.len() {
            let take = if at == 0 { 1 } else { in_flight };
            let group = &batches[at..(at + take).min(batches.len())];
            let rows: Vec<Result<Vec<Vec<f32>>>> = if group.len() > 1 {
                use rayon::prelude::*;
                group
                    .par_iter()
                    .map(|c| self.encode_batch(texts, c, opts, &ctx))
                    .collect()
            } else {
                group
                    .iter()
                    .map(|c| self.encode_batch(texts, c, opts, &ctx))
                    .collect()
            };
            for (chunk, rows) in group.iter().zip(rows) {
                for (&i, row) in chunk.iter().zip(rows?) {
                    if row.len() != dim {
                        return Err(Error::Msg(format!(
                            "embedding width {} differs from the model's {dim}",
                            row.len()
                        )));
                    }
                    out[i * dim..(i + 1) * dim].copy_from_slice(&row);
                }
                if let Some(pb) = &bar {
                    pb.inc(chunk.len() as u64);
                }
            }
            at += group.len();
        }
        if let Some(pb) = bar {
            pb.finish_and_clear();
        }
        Ok(Tensor::from_vec(out, (n, dim), &self.device)?)
    }
}

/// Padded tokens one forward computes at most on the CPU (a text longer
/// than this still goes alone). `batch_size` bounds the texts of a
/// forward; on the CPU a batch of short texts is also cut at this many
/// rows, where a layer's activations stay in the caches (the FFN's
/// `[rows, 1536]` of MiniLM is 6 MB at 1,024 rows) and a batch sorted by
/// length spans fewer lengths. Measured on Zen 4 (docs/performance.md):
/// the STS-test sentences at batch 128 +8% against no cut (budgets of
/// 512 and 2,048 gave +12% and +4%), Cranfield abstracts (~200 tokens)
/// unchanged (512 lost 5% there). Each text's embedding does not depend
/// on its batch, so the cut changes no result.
const CPU_BATCH_TOKENS: usize = 1024;

/// Overrides [`CPU_BATCH_TOKENS`] on any device (`0`: no limit, only
/// `batch_size`), for machines whose caches favour another size.
pub const BATCH_TOKENS_ENV: &str = "STPIPE_BATCH_TOKENS";

/// The padded tokens one forward of `encode` may hold: the value of
/// [`BATCH_TOKENS_ENV`] when set (`0`: no limit), else
/// [`CPU_BATCH_TOKENS`] on the CPU and no limit elsewhere. The command
/// line checks the setting before anything runs, so a bad value never
/// surfaces at a run's first evaluation.
pub fn batch_token_budget(cpu: bool) -> Result<usize> {
    match std::env::var(BATCH_TOKENS_ENV).ok() {
        Some(v) => match v.trim().parse::<usize>() {
            Ok(0) => Ok(usize::MAX),
            Ok(n) => Ok(n),
            Err(_) => Err(Error::Msg(format!(
                "{BATCH_TOKENS_ENV}={v:?} is not a whole number of token rows \
                 (set a count such as 1024, or 0 for no limit)"
            ))),
        },
        None if cpu => Ok(CPU_BATCH_TOKENS),
        None => Ok(usize::MAX),
    }
}

/// `order` (longest first) cut into batches of at most `size` texts and,
/// past the first text, at most `budget` padded tokens.
fn token_batches<'a>(
    order: &'a [usize],
    tokens: &[usize],
    size: usize,
    budget: usize,
) -> Vec<&'a [usize]> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let longest = tokens[order[start]].max(1);
        let fit = (budget / longest).clamp(1, size);
        let end = (start + fit).min(order.len());
        out.push(&order[start..end]);
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::token_batches;

    #[test]
    fn batches_keep_to_the_size_and_the_token_budget() {
        // Texts 0..6 with these token counts, sorted longest first.
        let tokens = [300, 40, 40, 30, 12, 10, 9];
        let order: Vec<usize> = (0..tokens.len()).collect();
        let cut = |size, budget| -> Vec<Vec<usize>> {
            token_batches(&order, &tokens, size, budget)
                .iter()
                .map(|b| b.to_vec())
                .collect()
        };
        // A text over the budget goes alone; then 100 / 40 = 2 texts, 100
        // / 30 = 3 texts, and the last one.
        assert_eq!(
            cut(8, 100),
            vec![vec![0], vec![1, 2], vec![3, 4, 5], vec![6]]
        );
        // Without a budget, the size alone cuts.
        assert_eq!(
            cut(3, usize::MAX),
            vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]
        );
        // The size binds before the budget does.
        assert_eq!(
            cut(2, 1000),
            vec![vec![0, 1], vec![2, 3], vec![4, 5], vec![6]]
        );
        assert!(token_batches(&[], &tokens, 4, 100).is_empty());
    }
}
