//! `docs/reference.md`, generated from the registry (`stpipe components`).

use std::fmt::Write as _;

use super::{family, Family, Rule};

/// The reference of every component, as Markdown (`docs/reference.md`).
pub fn reference_markdown() -> String {
    let mut s = String::new();
    s.push_str("# stpipe component reference\n\n");
    s.push_str(
        "<!-- Generated from the registry (src/registry/) by `stpipe components`.\n     \
         Do not edit: regenerate with `cargo run -q -- components > docs/reference.md`. -->\n\n",
    );
    let families = [
        (Family::Module, "Modules", "Links of a model chain: `model m = Transformer(...) -> Pooling(mean)`."),
        (Family::Loss, "Losses", "Used in objectives: `objective o = Loss(model, ...) on DATA (batch_size: 16)`."),
        (Family::Evaluator, "Evaluators", "`evaluator e = Evaluator(model, DATA, ...)`; metrics are named in `expect` and `save ... best by`. An evaluator encodes its texts longest first by token count, at most `batch_size` texts per forward; on the CPU a forward also holds at most 1,024 padded token rows (a longer text goes alone), which keeps its activations in the caches; `STPIPE_BATCH_TOKENS=N` sets another limit on any device, `0` none. A text's embedding never depends on the texts beside it, so neither bound changes a result."),
        (Family::Reader, "Data readers", "`data d = reader(path, ...) { column: expr, ... } limit N`."),
        (Family::Transform, "Data transforms", "Data sources built from other data sources."),
        (Family::Optimizer, "Optimizers", "`optimizer: AdamW(lr: 2e-5)` in a train stage."),
        (Family::Scheduler, "Learning-rate schedulers", "`scheduler: WarmupLinear(warmup: 10%)` in a train stage."),
        (Family::Stage, "Train stage settings", "`train MODEL [as NAME] { ... }`."),
        (Family::ObjectiveOptions, "Objective options", "`objective o = ... on DATA (options)`."),
    ];
    for (f, title, intro) in families {
        let _ = writeln!(s, "## {title}\n\n{intro}\n");
        for c in family(f) {
            let _ = writeln!(s, "### `{}`\n\n{}\n", c.name, c.doc);
            if !c.args.is_empty() {
                s.push_str("| argument | type | default | description |\n|---|---|---|---|\n");
                for a in c.args {
                    let def = match (a.required, a.default) {
                        (true, _) => "required".to_string(),
                        (false, Some(d)) => format!("`{d}`"),
                        (false, None) => "none".to_string(),
                    };
                    let name = if a.variadic {
                        format!("`{}...`", a.name)
                    } else {
                        format!("`{}`", a.name)
                    };
                    let range = a.range.describe();
                    let ty = if range.is_empty() {
                        a.ty.describe()
                    } else {
                        format!("{}, {range}", a.ty.describe())
                    };
                    let _ = writeln!(s, "| {name} | {ty} | {def} | {} |", a.doc);
                }
                s.push('\n');
            }
            if let Some(cols) = c.columns {
                let _ = writeln!(s, "Data: {}.\n", cols.describe());
            }
            if !c.rules.is_empty() {
                let r: Vec<String> = c.rules.iter().map(Rule::describe).collect();
                let _ = writeln!(s, "Rules: {}.\n", r.join("; "));
            }
            if !c.metrics.is_empty() {
                let m: Vec<String> = c.metrics.iter().map(|m| format!("`{m}`")).collect();
                let _ = writeln!(s, "Metrics (primary first): {}.\n", m.join(", "));
            }
        }
    }
    s
}
