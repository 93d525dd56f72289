//! Build Transformer -> Pooling(mean, cls) -> Dense(tanh) -> Normalize on a
//! pretrained model, take one gradient step on every parameter (so the saved
//! weights are stpipe's own, not a copy), and save it in the
//! sentence-transformers layout. `scripts/roundtrip.sh` then encodes with
//! `stpipe encode` and checks the result in Python sentence-transformers.
//!
//! cargo run --example roundtrip_save -- BASE_MODEL_DIR OUT_DIR

use candle_core::{Device, Tensor};
use stpipe::runtime::modules::{Activation, Dense, Module, Normalize, Pooling, PoolingMode};
use stpipe::runtime::{Ctx, SentenceEncoder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: roundtrip_save BASE_MODEL_DIR OUT_DIR");
        std::process::exit(2);
    }
    let base = SentenceEncoder::load(args[1].as_ref())?;
    let t = base.transformer().clone();
    let pooling = Pooling::new(t.hidden_size(), &[PoolingMode::Mean, PoolingMode::Cls]);
    let width = pooling.out_dim().unwrap_or(0);
    let dense = Dense::new(width, 96, true, Activation::Tanh, 7, &Device::Cpu)?;
    let enc = SentenceEncoder::new(vec![
        Box::new(t),
        Box::new(pooling),
        Box::new(dense),
        Box::new(Normalize::new()),
    ])?;

    // One SGD step in training mode (dropout on) on a toy objective.
    let batch = [
        "A man is playing a guitar.",
        "A woman is slicing an onion.",
        "Two dogs run through a field.",
        "The stock market fell sharply today.",
    ];
    let emb = enc.embed(&batch, &Ctx::train(1))?;
    let (n, d) = emb.dims2()?;
    let target = Tensor::arange(0u32, (n * d) as u32, &Device::Cpu)?
        .to_dtype(candle_core::DType::F32)?
        .reshape((n, d))?
        .cos()?;
    let loss = (emb * target)?.sum_all()?.neg()?;
    let grads = loss.backward()?;
    let mut stepped = 0;
    for v in enc.named_vars() {
        if let Some(g) = grads.get(v.var.as_tensor()) {
            v.var.set(&(v.var.as_tensor() - (g * 1e-3)?)?)?;
            stepped += 1;
        }
    }
    eprintln!("stepped {stepped} of {} parameters", enc.named_vars().len());
    enc.save(args[2].as_ref())?;
    eprintln!("saved to {}", args[2]);
    Ok(())
}
