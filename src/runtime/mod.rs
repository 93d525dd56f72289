//! The engine on candle: modules, the sentence encoder, the
//! sentence-transformers directory format and model download; data loading,
//! losses, evaluators and training.
//!
//! ```no_run
//! use stpipe::runtime::{EncodeOptions, SentenceEncoder};
//! let enc = SentenceEncoder::load("models/all-MiniLM-L6-v2".as_ref())?;
//! let emb = enc.encode(&["a sentence"], &EncodeOptions::default())?; // [1, 384]
//! for v in enc.named_vars() { println!("{} {:?}", v.name, v.var.dims()); }
//! enc.save("out/model".as_ref())?;
//! # Ok::<(), stpipe::runtime::Error>(())
//! ```

pub mod arch;
pub mod data;
pub mod download;
pub mod encoder;
pub mod error;
pub mod eval;
pub mod fp_env;
#[macro_use]
mod kernels;
pub mod loss;
pub mod modules;
pub mod ops;
pub mod process;
mod safetensors_out;
pub mod search;
pub mod signals;
pub mod st_format;
pub mod step;
pub mod train;
pub mod weights;

pub use encoder::{EncodeOptions, NamedVar, SentenceEncoder};
pub use error::{Error, Result};
pub use modules::{Features, Module};
pub use ops::Ctx;
