//! `stpipe encode`: sentences in, embeddings out.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use miette::{Context, IntoDiagnostic};

use crate::hub::ModelSearch;
use crate::runtime::{EncodeOptions, SentenceEncoder};

/// Output formats of `stpipe encode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON array of floats per line.
    Jsonl,
    /// A NumPy `.npy` array `[n, dim]` of float32.
    Npy,
    /// A safetensors file with one tensor `embeddings` `[n, dim]` f32.
    Safetensors,
}

/// Arguments of `stpipe encode`.
#[derive(Debug, Args)]
pub struct EncodeArgs {
    /// A model directory or a Hugging Face Hub id.
    #[arg(long)]
    pub model: String,
    /// Sentences per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// L2-normalise the embeddings.
    #[arg(long)]
    pub normalize: bool,
    /// Override the model's max_seq_length (tokens).
    #[arg(long)]
    pub max_seq_length: Option<usize>,
    /// Prepend the model's prompt of this name (its `prompts` in
    /// config_sentence_transformers.json); without `--prompt-name` or
    /// `--prompt`, the model's default prompt applies, if it has one.
    #[arg(long, conflicts_with = "prompt")]
    pub prompt_name: Option<String>,
    /// Prepend this text to every sentence.
    #[arg(long)]
    pub prompt: Option<String>,
    /// Embed with the Transformer stopped after its first LAYERS layers (a
    /// model trained with AdaptiveLayerLoss or Matryoshka2dLoss).
    #[arg(long)]
    pub layers: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    /// Output file (default: standard output).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Input file, one sentence per line (default or `-`: standard input).
    pub input: Option<PathBuf>,
}

/// Run `stpipe encode`.
pub fn run(args: EncodeArgs, search: &ModelSearch) -> miette::Result<()> {
    let cwd = std::env::current_dir().into_diagnostic()?;
    let mut enc = SentenceEncoder::from_spec(&args.model, search, &cwd)?;
    if let Some(n) = args.max_seq_length {
        enc.transformer_mut().set_max_seq_length(n)?;
    }
    let prompt = match (&args.prompt_name, &args.prompt) {
        (Some(name), _) => Some(enc.prompt_named(name).map_err(|e| {
            miette::miette!(
                help = "name one of the model's prompts, or give the text with --prompt",
                "{e}"
            )
        })?),
        (None, Some(text)) => Some(text.clone()),
        (None, None) => enc.transformer().default_prompt().map(str::to_string),
    };
    let have = enc.transformer().arch.num_layers();
    if let Some(k) = args.layers.filter(|&k| k == 0 || k > have) {
        return Err(miette::miette!(
            help = format!("give --layers from 1 to {have}"),
            "--layers {k}: the model has {have} layers"
        ));
    }
    let lines = read_lines(args.input.as_deref())?;
    let opts = EncodeOptions {
        batch_size: args.batch_size.max(1),
        normalize: args.normalize,
        progress: lines.len() > 256,
        prompt,
        layers: args.layers,
    };
    let emb = enc.encode(&lines, &opts)?;
    let (n, dim) = emb.dims2().into_diagnostic()?;
    // A diverged model (NaN or infinite weights) must not write `null`s
    // and succeed.
    let values = emb
        .flatten_all()
        .into_diagnostic()?
        .to_vec1::<f32>()
        .into_diagnostic()?;
    if let Some(i) = values.iter().position(|x| !x.is_finite()) {
        let line = i / dim.max(1) + 1;
        miette::bail!(
            help = "the model's weights are probably NaN or infinite; use another checkpoint",
            "the embedding of input line {line} is not finite"
        );
    }
    let bytes = match args.format {
        Format::Jsonl => {
            let rows = emb.to_vec2::<f32>().into_diagnostic()?;
            let mut s = String::with_capacity(n * dim * 12);
            for r in rows {
                s.push_str(&serde_json::to_string(&r).into_diagnostic()?);
                s.push('\n');
            }
            s.into_bytes()
        }
        Format::Npy => npy_bytes(
            &emb.flatten_all()
                .into_diagnostic()?
                .to_vec1::<f32>()
                .into_diagnostic()?,
            n,
            dim,
        ),
        Format::Safetensors => {
            let emb = emb.contiguous().into_diagnostic()?;
            safetensors::serialize([("embeddings", &emb)], None).into_diagnostic()?
        }
    };
    match &args.output {
        // Replaced whole or not at all; a full disk says so.
        Some(p) => crate::fsio::write_atomic(p, &bytes)
            .map_err(|e| crate::runtime::error::Error::io(p, e))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes).into_diagnostic()?;
            out.flush().into_diagnostic()?;
        }
    }
    Ok(())
}

fn read_lines(input: Option<&Path>) -> miette::Result<Vec<String>> {
    let reader: Box<dyn BufRead> = match input {
        None => Box::new(std::io::stdin().lock()),
        Some(p) if p.as_os_str() == "-" => Box::new(std::io::stdin().lock()),
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p)
                .into_diagnostic()
                .wrap_err_with(|| format!("cannot open {}", p.display()))?,
        )),
    };
    let name = input.map_or("standard input".to_string(), |p| p.display().to_string());
    let mut reader = reader;
    let mut lines = Vec::new();
    let mut bytes = Vec::new();
    while let Some(l) = crate::data::records::read_line(&mut reader, &mut bytes, lines.is_empty())
        .into_diagnostic()
        .wrap_err("cannot read the input")?
    {
        match l {
            Ok(l) => lines.push(l),
            Err(col) => miette::bail!(
                help = "the input must be UTF-8 text, one sentence per line",
                "{name}:{}: the line is not UTF-8 (byte {col})",
                lines.len() + 1
            ),
        }
    }
    Ok(lines)
}

/// A little-endian float32 `.npy` (format version 1.0) of shape `[n, dim]`.
pub fn npy_bytes(data: &[f32], n: usize, dim: usize) -> Vec<u8> {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({n}, {dim}), }}");
    // magic(6) + version(2) + len(2) + header + '\n', padded to 64 bytes.
    let total = 10 + header.len() + 1;
    let pad = (64 - total % 64) % 64;
    header.push_str(&" ".repeat(pad));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}
