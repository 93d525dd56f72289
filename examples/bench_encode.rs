//! Encoding throughput: all sentences of the STS benchmark test split (both
//! columns) with a model, at a batch size, median of N runs.
//!
//! cargo run --release --example bench_encode -- MODEL_DIR STS_TEST_CSV [BATCH] [RUNS]

use std::time::Instant;

use stpipe::runtime::{EncodeOptions, SentenceEncoder};

/// User + system CPU time of this process (Linux `/proc/self/stat`), so
/// that timings on a shared machine can be compared by CPU work too.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the full line: 11 and 12 here.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    stpipe::runtime::process::init(stpipe::runtime::process::Workload::Inference);
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: bench_encode MODEL_DIR STS_TEST_CSV [BATCH] [RUNS]");
        std::process::exit(2);
    }
    let batch: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(32);
    let runs: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let text = std::fs::read_to_string(&args[2])?;
    let mut sentences = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() >= 7 {
            sentences.push(cols[5].to_string());
            sentences.push(cols[6].to_string());
        }
    }
    let enc = SentenceEncoder::load(args[1].as_ref())?;
    let opts = EncodeOptions {
        batch_size: batch,
        ..Default::default()
    };
    // Warm-up on a slice.
    enc.encode(&sentences[..batch.min(sentences.len())], &opts)?;
    let mut times = Vec::new();
    let mut cpu_times = Vec::new();
    for i in 0..runs {
        let t = Instant::now();
        let c0 = cpu_seconds();
        let e = enc.encode(&sentences, &opts)?;
        let s = t.elapsed().as_secs_f64();
        let c = cpu_seconds() - c0;
        eprintln!(
            "run {}: {:.3}s wall, {:.3}s cpu ({:.1} sentences/s) {:?}",
            i + 1,
            s,
            c,
            sentences.len() as f64 / s,
            e.dims()
        );
        times.push(s);
        cpu_times.push(c);
    }
    cpu_times.sort_by(|a, b| a.total_cmp(b));
    eprintln!(
        "stpipe: median CPU time per pass {:.3}s = {:.1} sentences per CPU-second",
        cpu_times[cpu_times.len() / 2],
        sentences.len() as f64 / cpu_times[cpu_times.len() / 2]
    );
    times.sort_by(|a, b| a.total_cmp(b));
    let median = times[times.len() / 2];
    println!(
        "stpipe: {} sentences, batch {batch}, median of {runs}: {median:.3}s = {:.1} sentences/s",
        sentences.len(),
        sentences.len() as f64 / median
    );
    Ok(())
}
