//! `Transformer`: tokenizer + BERT-family encoder, producing token embeddings.
//!
//! Loads a Hugging Face model directory: `config.json`, `model.safetensors`
//! (or `pytorch_model.bin`), `tokenizer.json` (or `vocab.txt`), and the
//! sentence-transformers `sentence_bert_config.json` when present.

use std::any::Any;
use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Var};
use serde_json::{json, Value};

use super::tokenizer::TextTokenizer;
use super::{Features, Module};
use crate::runtime::arch::{self, ArchSpec, Encoder};
use crate::runtime::error::{write_json, Error, Result};
use crate::runtime::ops::Ctx;
use crate::runtime::weights::{save_safetensors, vars_to_tensors, WeightFile};

use super::{ModuleCx, ModuleEntry};
use crate::registry::{maybe, req, ArgType::*, Args, Component, Family, ModuleShape};

pub const ENTRY: ModuleEntry = ModuleEntry {
    spec: Component {
        name: "Transformer",
        family: Family::Module,
        doc: "A Hugging Face encoder (model_type bert, roberta, xlm-roberta, camembert, distilbert, mpnet, modernbert) producing token embeddings; its width is `hidden_size` from the model's config.json. Must start a chain.",
        args: &[
            req("model", Str, "path of a model directory, or a Hub id (`sentence-transformers/all-MiniLM-L6-v2`)"),
            maybe("max_seq_length", Count, "truncate inputs to this many tokens (default: the model's own setting); at least 2 and at most the model's positions").at_least(2.0),
            maybe("do_lower_case", Bool, "lower-case inputs before tokenizing (default: the model's own setting)"),
            maybe("prompts", StrMap, "named prompts, `{query: \"query: \", document: \"passage: \"}`, saved with the model (config_sentence_transformers.json); objectives and evaluators prepend prompts to their columns, `stpipe encode --prompt-name` picks one"),
            maybe("default_prompt_name", Str, "the prompt evaluators and `stpipe encode` apply when none is given (one of `prompts`)"),
        ],
        rules: &[crate::registry::Rule::KeyOf("default_prompt_name", "prompts")],
        ..Component::BASE
    },
    shape: ModuleShape::Base,
    build,
};

fn build(a: &Args, cx: &ModuleCx) -> Result<Vec<Box<dyn Module>>> {
    let e = |e: crate::registry::ArgError| Error::Msg(e.to_string());
    let dir =
        crate::runtime::download::resolve(a.str("model").map_err(e)?, cx.search, cx.base_dir)?;
    let mut t = Transformer::load(&dir, a.opt_usize("max_seq_length").map_err(e)?, cx.device)?;
    if let Some(lower) = a.get("do_lower_case").map_err(e)?.and_then(|v| v.as_bool()) {
        t.set_do_lower_case(lower);
    }
    let prompts = a.str_map("prompts").map_err(e)?;
    if !prompts.is_empty() {
        t.prompts = prompts;
    }
    if let Some(name) = a.opt_str("default_prompt_name").map_err(e)? {
        t.set_default_prompt_name(Some(name.to_string()))?;
    }
    Ok(vec![Box::new(t)])
}

/// Tokenizer files copied verbatim when the model is saved.
const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "added_tokens.json",
    "sentencepiece.bpe.model",
    "merges.txt",
    "vocab.json",
];

/// Names sentence-transformers has used for the Transformer's own config.
const ST_CONFIG_FILES: &[&str] = &[
    "sentence_bert_config.json",
    "sentence_roberta_config.json",
    "sentence_distilbert_config.json",
    "sentence_camembert_config.json",
    "sentence_albert_config.json",
    "sentence_xlm-roberta_config.json",
    "sentence_xlnet_config.json",
];

/// What the checker reads of a Transformer directory, by the loader's own
/// rules: its config.json must describe an encoder stpipe runs.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformerInfo {
    pub model_type: String,
    pub hidden_size: usize,
    /// The longest input the position embeddings allow.
    pub max_positions: usize,
    /// The length inputs are truncated to unless the pipeline says
    /// otherwise (what the directory declares, within the positions).
    pub max_seq_length: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    /// Trainable parameters (embeddings and layers).
    pub params: u64,
}

/// What a model directory declares besides its config.json.
struct Settings {
    /// `max_seq_length` (sentence-transformers' config), else the
    /// tokenizer's `model_max_length`.
    declared_len: Option<usize>,
    /// Lower-case inputs (sentence-transformers' `do_lower_case`).
    do_lower_case: bool,
    /// The vocabulary is lower-case (the tokenizer config's `do_lower_case`).
    lowercase_vocab: bool,
}

fn settings(dir: &Path) -> Result<Settings> {
    let mut out = Settings {
        declared_len: None,
        do_lower_case: false,
        lowercase_vocab: true,
    };
    // sentence-transformers' own settings.
    if let Some(p) = ST_CONFIG_FILES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
    {
        let v: Value = crate::runtime::error::read_json(&p)?;
        out.declared_len = v
            .get("max_seq_length")
            .and_then(Value::as_u64)
            .map(|x| x as usize);
        out.do_lower_case = v
            .get("do_lower_case")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    }
    let tcfg_path = dir.join("tokenizer_config.json");
    if tcfg_path.is_file() {
        let v: Value = crate::runtime::error::read_json(&tcfg_path)?;
        if out.declared_len.is_none() {
            out.declared_len = v
                .get("model_max_length")
                .and_then(Value::as_f64)
                .filter(|x| *x > 0.0 && *x < 1e6)
                .map(|x| x as usize);
        }
        if let Some(b) = v.get("do_lower_case").and_then(Value::as_bool) {
            out.lowercase_vocab = b;
        }
    }
    Ok(out)
}

/// Read and validate the config.json of a Transformer directory.
pub fn inspect(dir: &Path) -> Result<TransformerInfo> {
    let cpath = dir.join("config.json");
    let (config, _) = arch::read_config(&cpath)?;
    let limit = config.position_limit();
    Ok(TransformerInfo {
        model_type: config.model_type().to_string(),
        hidden_size: config.hidden_size(),
        max_positions: limit,
        max_seq_length: settings(dir)?
            .declared_len
            .unwrap_or(limit)
            .clamp(2, limit.max(2)),
        num_layers: config.num_layers(),
        num_heads: config.num_heads(),
        params: config.params(),
    })
}

/// A tokenizer and a trainable encoder.
#[derive(Debug, Clone)]
pub struct Transformer {
    /// What config.json says of the architecture.
    pub arch: Arc<dyn ArchSpec>,
    /// The encoder; clones share its weights.
    pub encoder: Arc<dyn Encoder>,
    pub tokenizer: TextTokenizer,
    pub max_seq_length: usize,
    pub do_lower_case: bool,
    /// Named prompts (sentence-transformers' `prompts`).
    pub prompts: Vec<(String, String)>,
    /// The prompt applied when none is given.
    pub default_prompt_name: Option<String>,
    config_raw: Value,
    tokenizer_files: Vec<(String, Vec<u8>)>,
}

impl Transformer {
    /// Load from a model directory; `max_seq_length` overrides the one the
    /// directory declares.
    pub fn load(dir: &Path, max_seq_length: Option<usize>, device: &Device) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::missing(dir, "model directory"));
        }
        let cpath = dir.join("config.json");
        let (config, config_raw) = arch::read_config(&cpath)?;

        let Settings {
            declared_len,
            do_lower_case,
            lowercase_vocab,
        } = settings(dir)?;
        let pos_limit = config.position_limit();
        if let Some(n) = declared_len.filter(|&n| n < 2) {
            return Err(Error::Config {
                path: dir.to_path_buf(),
                msg: format!("the model declares max_seq_length {n}, which leaves no room for a token between [CLS] and [SEP] (at least 2)"),
            });
        }
        let max_len = max_seq_length
            .or(declared_len)
            .unwrap_or(pos_limit)
            .min(pos_limit)
            .max(2);

        let weights = WeightFile::load_from_dir(dir, device)?;
        let encoder: Arc<dyn Encoder> = Arc::from(config.load(&cpath, &weights)?);
        let mut tokenizer =
            TextTokenizer::load(dir, max_len, lowercase_vocab, config.pad_token_id())?;
        tokenizer.lowercase_input = do_lower_case;
        tokenizer.vocab_limit = Some(encoder.vocab_rows() as u32);

        let mut tokenizer_files = Vec::new();
        for name in TOKENIZER_FILES {
            let p = dir.join(name);
            if p.is_file() {
                let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
                tokenizer_files.push((name.to_string(), bytes));
            }
        }
        Ok(Transformer {
            arch: Arc::from(config),
            encoder,
            tokenizer,
            max_seq_length: max_len,
            do_lower_case,
            prompts: Vec::new(),
            default_prompt_name: None,
            config_raw,
            tokenizer_files,
        })
    }

    /// The width of the token embeddings.
    pub fn hidden_size(&self) -> usize {
        self.arch.hidden_size()
    }

    /// Lower-case inputs before tokenizing, or not (saved with the model as
    /// `do_lower_case`).
    pub fn set_do_lower_case(&mut self, lower: bool) {
        self.do_lower_case = lower;
        self.tokenizer.lowercase_input = lower;
    }

    /// Change the truncation length.
    pub fn set_max_seq_length(&mut self, n: usize) -> Result<()> {
        self.max_seq_length = n;
        self.tokenizer.set_max_len(n)
    }

    /// Set the default prompt, which must be one of the prompts.
    pub fn set_default_prompt_name(&mut self, name: Option<String>) -> Result<()> {
        if let Some(n) = &name {
            if self.prompt(n).is_none() {
                return Err(Error::Msg(format!(
                    "default_prompt_name `{n}` is not one of the prompts ({})",
                    self.prompt_names()
                )));
            }
        }
        self.default_prompt_name = name;
        Ok(())
    }

    /// The text of the prompt called `name`.
    pub fn prompt(&self, name: &str) -> Option<&str> {
        self.prompts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
    }

    /// The prompt names, for messages.
    pub fn prompt_names(&self) -> String {
        if self.prompts.is_empty() {
            return "the model has no prompts".into();
        }
        self.prompts
            .iter()
            .map(|(n, _)| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The text of the default prompt, if one is set.
    pub fn default_prompt(&self) -> Option<&str> {
        self.default_prompt_name
            .as_deref()
            .and_then(|n| self.prompt(n))
    }

    /// Tokens a prompt occupies at the start of a tokenized text, as
    /// sentence-transformers counts them: the prompt tokenized alone,
    /// less its closing special token.
    pub fn prompt_length(&self, prompt: &str) -> Result<usize> {
        self.tokenizer.prompt_length(prompt)
    }

    /// Tokenise texts into a padded batch.
    pub fn tokenize(&self, texts: &[&str], device: &Device) -> Result<Features> {
        self.tokenizer.encode(texts, device)
    }
}

impl Transformer {
    /// The module's forward, with the input of each encoder layer pushed
    /// onto `states` (see [`Encoder::forward_with_states`]).
    pub fn forward_with_states(
        &self,
        mut f: Features,
        ctx: &Ctx,
        states: &mut Vec<candle_core::Tensor>,
    ) -> Result<Features> {
        let ids = Features::need(&f.input_ids, "input_ids", "Transformer")?;
        let mask = Features::need(&f.attention_mask, "attention_mask", "Transformer")?;
        let te = self.encoder.forward_with_states(
            ids,
            f.token_type_ids.as_ref(),
            mask,
            ctx,
            Some(states),
        )?;
        f.token_embeddings = Some(te);
        Ok(f)
    }
}

impl Module for Transformer {
    fn type_name(&self) -> &'static str {
        "Transformer"
    }

    fn forward(&self, mut f: Features, ctx: &Ctx) -> Result<Features> {
        let ids = Features::need(&f.input_ids, "input_ids", "Transformer")?;
        let mask = Features::need(&f.attention_mask, "attention_mask", "Transformer")?;
        let te = self
            .encoder
            .forward(ids, f.token_type_ids.as_ref(), mask, ctx)?;
        f.token_embeddings = Some(te);
        Ok(f)
    }

    fn out_dim(&self) -> Option<usize> {
        Some(self.hidden_size())
    }

    fn named_vars(&self) -> Vec<(String, Var)> {
        self.encoder.named_vars()
    }

    fn save(&self, dir: &Path) -> Result<()> {
        write_json(&dir.join("config.json"), &self.config_raw)?;
        let mut tensors = vars_to_tensors(&self.named_vars());
        tensors.extend(self.encoder.extra_tensors());
        save_safetensors(&dir.join("model.safetensors"), &tensors)?;
        for (name, bytes) in &self.tokenizer_files {
            let p = dir.join(name);
            crate::fsio::write(&p, bytes).map_err(|e| Error::io(&p, e))?;
        }
        if !self
            .tokenizer_files
            .iter()
            .any(|(n, _)| n == "tokenizer.json")
        {
            self.tokenizer.save_json(&dir.join("tokenizer.json"))?;
        }
        if !self
            .tokenizer_files
            .iter()
            .any(|(n, _)| n == "tokenizer_config.json")
        {
            write_json(
                &dir.join("tokenizer_config.json"),
                &json!({
                    "model_max_length": self.max_seq_length,
                    "do_lower_case": true,
                    "cls_token": "[CLS]",
                    "sep_token": "[SEP]",
                    "pad_token": "[PAD]",
                    "unk_token": "[UNK]",
                    "mask_token": "[MASK]",
                    "tokenizer_class": "BertTokenizer",
                }),
            )?;
        }
        write_json(
            &dir.join("sentence_bert_config.json"),
            &json!({
                "max_seq_length": self.max_seq_length,
                "do_lower_case": self.do_lower_case,
            }),
        )
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
