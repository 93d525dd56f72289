//! Text -> padded id tensors, on the `tokenizers` crate.
//!
//! Truncation is set here (to the model's `max_seq_length`); padding is done
//! per batch to the longest sequence, on the right.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use tokenizers::{Tokenizer, TruncationParams};

use super::Features;
use crate::runtime::error::{Error, Result};

/// A tokenizer configured for one model.
#[derive(Clone)]
pub struct TextTokenizer {
    tok: Tokenizer,
    /// Where it was read from (for error messages).
    pub path: PathBuf,
    pub pad_id: u32,
    pub max_len: usize,
    /// Lower-case inputs before tokenising (`do_lower_case`).
    pub lowercase_input: bool,
    /// Rows of the model's token embeddings: an id at or beyond it (a
    /// tokenizer larger than the model) is an error naming the token, not
    /// an out-of-range gather deep in the encoder.
    pub vocab_limit: Option<u32>,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("path", &self.path)
            .field("pad_id", &self.pad_id)
            .field("max_len", &self.max_len)
            .finish()
    }
}

fn tok_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Tokenizer {
        path: path.to_path_buf(),
        msg: e.to_string(),
    }
}

impl TextTokenizer {
    /// Load `tokenizer.json` from `dir`, or build a BERT WordPiece tokenizer
    /// from `vocab.txt` when only that is present.
    pub fn load(
        dir: &Path,
        max_len: usize,
        lowercase_vocab: bool,
        pad_hint: Option<u32>,
    ) -> Result<Self> {
        let json = dir.join("tokenizer.json");
        let vocab = dir.join("vocab.txt");
        let tok = if json.is_file() {
            Tokenizer::from_file(&json).map_err(|e| tok_err(&json, e))?
        } else if vocab.is_file() {
            bert_wordpiece(&vocab, lowercase_vocab)?
        } else {
            return Err(Error::missing(
                &json,
                "the tokenizer (neither tokenizer.json nor vocab.txt is present)",
            ));
        };
        let path = if json.is_file() { json } else { vocab };
        Self::from_tokenizer(tok, path, max_len, pad_hint)
    }

    /// Wrap an existing tokenizer.
    pub fn from_tokenizer(
        mut tok: Tokenizer,
        path: PathBuf,
        max_len: usize,
        pad_hint: Option<u32>,
    ) -> Result<Self> {
        let pad_id = tok
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| ["[PAD]", "<pad>"].iter().find_map(|t| tok.token_to_id(t)))
            .or(pad_hint)
            .unwrap_or(0);
        tok.with_padding(None);
        tok.with_truncation(Some(TruncationParams {
            max_length: max_len,
            ..Default::default()
        }))
        .map_err(|e| tok_err(&path, e))?;
        Ok(TextTokenizer {
            tok,
            path,
            pad_id,
            max_len,
            lowercase_input: false,
            vocab_limit: None,
        })
    }

    /// The underlying tokenizer (truncation set, padding off).
    pub fn inner(&self) -> &Tokenizer {
        &self.tok
    }

    /// The characters of a text kept before tokenization: 100 per token of
    /// `max_len` (WordPiece's longest word) and at least 8,192 — enough
    /// for every kept token of any text short of a pathological single
    /// word.
    pub fn max_chars(&self) -> usize {
        (self.max_len.saturating_mul(100)).max(8192)
    }

    /// Change the truncation length.
    pub fn set_max_len(&mut self, max_len: usize) -> Result<()> {
        self.max_len = max_len;
        self.tok
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| tok_err(&self.path, e))?;
        Ok(())
    }

    /// Write `tokenizer.json` without the runtime's truncation setting.
    pub fn save_json(&self, path: &Path) -> Result<()> {
        let mut t = self.tok.clone();
        t.with_truncation(None).map_err(|e| tok_err(path, e))?;
        let json = t.to_string(false).map_err(|e| tok_err(path, e))?;
        crate::fsio::write(path, json.as_bytes()).map_err(|e| Error::io(path, e))
    }

    /// Tokenise a batch into right-padded `[batch, seq]` tensors. Each text
    /// is first cut to [`Self::max_chars`] characters (at a space when
    /// there is one near the cut): truncation keeps `max_len` tokens, and a
    /// 300 MB line must not be tokenized whole to find them.
    pub fn encode(&self, texts: &[&str], device: &Device) -> Result<Features> {
        let encs = self
            .tok
            .encode_batch(self.inputs(texts), true)
            .map_err(|e| tok_err(&self.path, e))?;
        if let Some(limit) = self.vocab_limit {
            for (e, text) in encs.iter().zip(texts) {
                if let Some(k) = e.get_ids().iter().position(|&id| id >= limit) {
                    let token = e.get_tokens().get(k).cloned().unwrap_or_default();
                    return Err(tok_err(
                        &self.path,
                        format!(
                            "token `{token}` (id {}) of the text `{}` is beyond the model's {limit} token embeddings: the tokenizer does not belong to these weights (compare its vocabulary with `vocab_size` in config.json)",
                            e.get_ids()[k],
                            cut_chars(text, 60)
                        ),
                    ));
                }
            }
        }
        let b = encs.len();
        let s = encs
            .iter()
            .map(|e| e.get_ids().len())
            .max()
            .unwrap_or(0)
            .max(1);
        let mut ids = vec![self.pad_id; b * s];
        let mut types = vec![0u32; b * s];
        let mut mask = vec![0f32; b * s];
        for (i, e) in encs.iter().enumerate() {
            for (j, ((&id, &ty), &m)) in e
                .get_ids()
                .iter()
                .zip(e.get_type_ids())
                .zip(e.get_attention_mask())
                .enumerate()
            {
                ids[i * s + j] = id;
                types[i * s + j] = ty;
                mask[i * s + j] = m as f32;
            }
        }
        Ok(Features {
            input_ids: Some(Tensor::from_vec(ids, (b, s), device)?),
            token_type_ids: Some(Tensor::from_vec(types, (b, s), device)?),
            attention_mask: Some(Tensor::from_vec(mask, (b, s), device)?),
            ..Default::default()
        })
    }

    /// The texts as the tokenizer is given them: cut to
    /// [`Self::max_chars`], lower-cased where the vocabulary is.
    fn inputs(&self, texts: &[&str]) -> Vec<String> {
        let limit = self.max_chars();
        texts
            .iter()
            .map(|t| {
                let t = cut_chars(t, limit);
                if self.lowercase_input {
                    t.to_lowercase()
                } else {
                    t.to_string()
                }
            })
            .collect()
    }

    /// How many tokens (special tokens included, after truncation) each
    /// text becomes: the length [`Self::encode`] pads its batch to.
    /// Encoding sorts by it, so that a batch holds texts of one length and
    /// pads little. Tokenises in slices of a few thousand texts, so that a
    /// large corpus never has all its encodings in memory at once.
    pub fn token_counts(&self, texts: &[&str]) -> Result<Vec<usize>> {
        let mut counts = Vec::with_capacity(texts.len());
        for part in texts.chunks(4096) {
            let encs = self
                .tok
                .encode_batch(self.inputs(part), true)
                .map_err(|e| tok_err(&self.path, e))?;
            counts.extend(encs.iter().map(|e| e.get_ids().len()));
        }
        Ok(counts)
    }

    /// The length of `prompt` tokenized alone with the special tokens,
    /// less one when it ends with a special token (the separator a text
    /// would follow).
    pub fn prompt_length(&self, prompt: &str) -> Result<usize> {
        let text = if self.lowercase_input {
            prompt.to_lowercase()
        } else {
            prompt.to_string()
        };
        let e = self
            .tok
            .encode(text, true)
            .map_err(|e| tok_err(&self.path, e))?;
        let n = e.get_ids().len();
        let closing = e.get_special_tokens_mask().last() == Some(&1);
        Ok(if closing { n.saturating_sub(1) } else { n })
    }
}

/// `t` cut to at most `limit` characters, at the last space in the final
/// tenth when there is one (so that no word is split).
pub fn cut_chars(t: &str, limit: usize) -> &str {
    let Some((end, _)) = t.char_indices().nth(limit) else {
        return t;
    };
    let head = &t[..end];
    let floor = head.len() - head.len() / 10;
    match head.rfind(char::is_whitespace) {
        Some(i) if i >= floor => &head[..i],
        _ => head,
    }
}

/// A BERT WordPiece tokenizer (BERT normaliser, pre-tokeniser, `[CLS] ...
/// [SEP]` template) built from a `vocab.txt`.
pub fn bert_wordpiece(vocab_path: &Path, lowercase: bool) -> Result<Tokenizer> {
    use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
    use tokenizers::models::wordpiece::WordPiece;
    use tokenizers::normalizers::bert::BertNormalizer;
    use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
    use tokenizers::processors::bert::BertProcessing;

    let text = std::fs::read_to_string(vocab_path).map_err(|e| Error::io(vocab_path, e))?;
    let mut vocab: HashMap<String, u32> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let tok = line.trim_end_matches('\r');
        if !tok.is_empty() {
            vocab.insert(tok.to_string(), i as u32);
        }
    }
    let need = |t: &str| -> Result<u32> {
        vocab
            .get(t)
            .copied()
            .ok_or_else(|| tok_err(vocab_path, format!("vocabulary has no `{t}` token")))
    };
    let cls = need("[CLS]")?;
    let sep = need("[SEP]")?;
    need("[UNK]")?;
    let model = WordPiece::builder()
        .files(vocab_path.to_string_lossy().into_owned())
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| tok_err(vocab_path, e))?;
    let mut tok = Tokenizer::new(model);
    tok.with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)))
        .map_err(|e| tok_err(vocab_path, e))?;
    tok.with_pre_tokenizer(Some(BertPreTokenizer));
    tok.with_post_processor(Some(BertProcessing::new(
        ("[SEP]".into(), sep),
        ("[CLS]".into(), cls),
    )));
    tok.with_decoder(Some(WordPieceDecoder::default()));
    Ok(tok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_counts_are_the_lengths_encode_pads_to() {
        let dir = tempfile::tempdir().unwrap();
        let vocab = dir.path().join("vocab.txt");
        std::fs::write(
            &vocab,
            "[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\ncat\nsat\non\nmat\n##s\n",
        )
        .unwrap();
        let tok = bert_wordpiece(&vocab, true).unwrap();
        let tok = TextTokenizer::from_tokenizer(tok, vocab, 6, None).unwrap();
        let texts = [
            "",
            "the cat",
            "The cats sat on the mat",
            "zebra",
            "cat cats",
        ];
        let counts = tok.token_counts(&texts).unwrap();
        // [CLS] and [SEP] around the word pieces, cut at 6 in all.
        assert_eq!(counts, vec![2, 4, 6, 3, 5]);
        for (text, &n) in texts.iter().zip(&counts) {
            let f = tok.encode(&[text], &Device::Cpu).unwrap();
            let mask = f.attention_mask.unwrap().flatten_all().unwrap();
            assert_eq!(
                mask.sum_all().unwrap().to_scalar::<f32>().unwrap() as usize,
                n,
                "{text}"
            );
        }
    }
}
