//! The sentence-transformers directory format, read and written.
//!
//! Loading accepts the legacy layout (`sentence_transformers.models.*`
//! module types, `pooling_mode_*` flags, `sentence_bert_config.json`) and the
//! newer one (other module class paths ending in the same class names,
//! `embedding_dimension` + `pooling_mode` list, `model_max_length` in
//! `tokenizer_config.json`), and a plain Hugging Face model directory (no
//! `modules.json`: Transformer + mean pooling). Saving writes the legacy
//! layout, which every sentence-transformers version reads.

pub mod load;
pub mod save;

pub use load::load_dir;
pub use save::save_dir;
