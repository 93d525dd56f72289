//! What may stand at a place of a document ([`Slot`]), from the brackets
//! open before it and the statement it is in: the context that
//! completion offers names for and that hover reads a word by.

use super::scan::{Doc, Stmt, TokKind, STATEMENTS};
use crate::check::BindKind;
use crate::registry::{self, ArgSpec, ArgType, Component, Family};

/// Where in a model chain a module name stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainPos {
    /// Right after `=`: a base (`Transformer`, `load`).
    Base,
    /// After `->`: anything but a base.
    After,
}

/// What may stand at a place of the document.
#[derive(Debug, Default)]
pub struct Slot {
    /// The statement the place is in.
    pub stmt: Option<usize>,
    /// Component names of these families.
    pub families: Vec<Family>,
    pub chain: Option<ChainPos>,
    /// Names bound to these kinds.
    pub bindings: Vec<BindKind>,
    /// Bare words: choices, `true`/`false`, statement keywords.
    pub words: Vec<&'static str>,
    /// Argument (or setting) names of this component, less `given`.
    pub args_of: Option<&'static Component>,
    pub given: Vec<String>,
    /// Positional values before the place: they fill the first arguments.
    pub positional: usize,
    /// Keys besides the component's arguments (`evaluate`, `checkpoint`).
    pub extra_keys: Vec<&'static str>,
    /// The argument a value here fills.
    pub value_of: Option<&'static ArgSpec>,
    /// The evaluator binding whose metric names go here (after `dev.`).
    pub metrics_of: Option<String>,
}

/// One open bracket before the place.
struct Frame {
    open: &'static str,
    /// The token index of the called name, for `(`.
    callee: Option<usize>,
    /// The key and positional index of the item this bracket opened in.
    parent_key: Option<String>,
    parent_positional: usize,
    given: Vec<String>,
    cur_key: Option<String>,
    positional: usize,
    item_tokens: usize,
    /// The last token at this bracket's level (the bracket itself first).
    last: usize,
}

impl Frame {
    fn new(open: &'static str, i: usize, callee: Option<usize>, parent: Option<&Frame>) -> Self {
        Frame {
            open,
            callee,
            parent_key: parent.and_then(|p| p.cur_key.clone()),
            parent_positional: parent.map_or(0, |p| p.positional),
            given: Vec::new(),
            cur_key: None,
            positional: 0,
            item_tokens: 0,
            last: i,
        }
    }
}

/// Brackets deeper than this are not resolved (the resolution recurses
/// once per level, and pasted garbage may open thousands).
const MAX_DEPTH: usize = 64;

/// The settings keys of a train block that are not stage arguments.
const STAGE_ITEMS: [&str; 2] = ["evaluate", "checkpoint"];

impl Doc<'_> {
    /// What may stand at a place whose preceding tokens are `0..k`
    /// (`offset`: the place, to tell the start of a line).
    pub fn slot_at(&self, k: usize, offset: usize) -> Slot {
        let k = k.min(self.toks.len());
        let Some(si) = k.checked_sub(1).and_then(|j| self.stmt_of(j)) else {
            return self.line_start_slot(None, offset);
        };
        let st = self.stmts[si];
        let stack = self.frames(st.first, k);
        let mut slot = Slot {
            stmt: Some(si),
            ..Slot::default()
        };
        match stack.last() {
            None => self.top_slot(&mut slot, st, k),
            Some(f) => self.frame_slot(&mut slot, st, &stack, f),
        }
        let empty = slot.families.is_empty()
            && slot.bindings.is_empty()
            && slot.words.is_empty()
            && slot.args_of.is_none()
            && slot.metrics_of.is_none();
        if empty && stack.is_empty() {
            return self.line_start_slot(Some(si), offset);
        }
        slot
    }

    /// Statement keywords, where a line starts outside any bracket.
    fn line_start_slot(&self, stmt: Option<usize>, offset: usize) -> Slot {
        let before = self.src.get(..offset).unwrap_or("");
        let line = before.rsplit(['\n', '\r']).next().unwrap_or("");
        let words = if line.trim().chars().all(|c| c.is_ascii_alphabetic()) {
            STATEMENTS.to_vec()
        } else {
            Vec::new()
        };
        Slot {
            stmt,
            words,
            ..Slot::default()
        }
    }

    /// The brackets open at the end of tokens `first..k`.
    fn frames(&self, first: usize, k: usize) -> Vec<Frame> {
        let mut stack: Vec<Frame> = Vec::new();
        for i in first..k {
            let t = &self.toks[i];
            match t.text {
                "(" | "[" | "{" => {
                    let open = match t.text {
                        "(" => "(",
                        "[" => "[",
                        _ => "{",
                    };
                    let callee = (open == "(" && i > first)
                        .then(|| i - 1)
                        .filter(|&j| self.toks[j].kind == TokKind::Word);
                    if let Some(p) = stack.last_mut() {
                        p.item_tokens += 1;
                    }
                    stack.push(Frame::new(open, i, callee, stack.last()));
                }
                ")" | "]" | "}" => {
                    stack.pop();
                    if let Some(p) = stack.last_mut() {
                        p.last = i;
                    }
                }
                _ => {
                    let Some(f) = stack.last_mut() else { continue };
                    match t.text {
                        "," => {
                            if f.cur_key.is_none() && f.item_tokens > 0 {
                                f.positional += 1;
                            }
                            f.cur_key = None;
                            f.item_tokens = 0;
                        }
                        ":" if self.toks[f.last].kind == TokKind::Word && f.last + 1 == i => {
                            let key = self.toks[f.last].text.to_string();
                            f.given.push(key.clone());
                            f.cur_key = Some(key);
                            f.item_tokens = 0;
                        }
                        _ => f.item_tokens += 1,
                    }
                    f.last = i;
                }
            }
        }
        stack
    }

    /// Outside brackets: what follows the statement's last token.
    fn top_slot(&self, slot: &mut Slot, st: Stmt, k: usize) {
        let last = self.toks[k - 1].text;
        if last == "." && k >= 2 {
            let ev = self.toks[k - 2].text;
            if self
                .binding(ev)
                .is_some_and(|b| b.kind == BindKind::Evaluator)
            {
                slot.metrics_of = Some(ev.to_string());
            }
            return;
        }
        match (st.kw, last) {
            ("let", "=") => slot.bindings.push(BindKind::Let),
            ("model", "=") | ("model", "->") => {
                slot.families.push(Family::Module);
                slot.chain = Some(if last == "=" {
                    ChainPos::Base
                } else {
                    ChainPos::After
                });
            }
            ("data", "=") => {
                slot.families.extend([Family::Reader, Family::Transform]);
                slot.bindings.push(BindKind::Data);
            }
            ("objective", "=") => slot.families.push(Family::Loss),
            ("objective", "on") => slot.bindings.push(BindKind::Data),
            ("evaluator", "=") => slot.families.push(Family::Evaluator),
            ("train", "train") | ("save", "save") => slot.bindings.push(BindKind::Model),
            ("save", "by") | ("expect", "expect") => slot.bindings.push(BindKind::Evaluator),
            _ => {}
        }
    }

    /// Inside the innermost bracket `f` of `stack`.
    fn frame_slot(&self, slot: &mut Slot, st: Stmt, stack: &[Frame], f: &Frame) {
        let last = self.toks[f.last].text;
        let at_item_start = last == f.open || last == ",";
        let depth = stack.len() - 1;
        match f.open {
            "(" => {
                let comp = self.frame_component(st, stack, depth);
                if last == ":" {
                    let spec = comp.zip(f.cur_key.as_deref()).and_then(|(c, k)| c.arg(k));
                    if let Some(spec) = spec {
                        fill_value(slot, spec);
                    }
                } else if at_item_start {
                    slot.args_of = comp;
                    slot.given = f.given.clone();
                    slot.positional = f.positional;
                    // A value for the next positional argument, unless
                    // that one was given by name.
                    let spec = comp.and_then(|c| positional_spec(c, f.positional));
                    if let Some(spec) = spec.filter(|a| !f.given.iter().any(|g| g == a.name)) {
                        fill_value(slot, spec);
                    }
                }
            }
            "[" if at_item_start => {
                if let Some(spec) = self.item_spec(st, stack, depth) {
                    fill_value(slot, spec);
                }
            }
            "{" if depth == 0 && st.kw == "train" => train_slot(slot, f, last, at_item_start),
            "{" if depth == 0 && st.kw == "data" && last == ":" => {
                slot.words
                    .extend(crate::check::COLUMN_FUNCTIONS.iter().copied());
            }
            _ => {}
        }
    }

    /// The component whose arguments bracket `stack[d]` holds: a call's
    /// (by the statement or the setting it stands in), or a train block's
    /// settings.
    fn frame_component(&self, st: Stmt, stack: &[Frame], d: usize) -> Option<&'static Component> {
        if d > MAX_DEPTH {
            return None;
        }
        let f = stack.get(d)?;
        if f.open == "{" {
            return (d == 0 && st.kw == "train").then(registry::stage);
        }
        if f.open != "(" {
            return None;
        }
        let name = self.toks[f.callee?].text;
        let families: &[Family] = if d == 0 {
            match st.kw {
                "model" => &[Family::Module],
                "data" => &[Family::Reader, Family::Transform],
                "objective" if self.after_on(st, f.callee?) => {
                    return Some(registry::objective_options())
                }
                "objective" => &[Family::Loss],
                "evaluator" => &[Family::Evaluator],
                _ => &[],
            }
        } else {
            match self.item_spec(st, stack, d).map(|a| a.ty) {
                Some(ArgType::OptimizerCall) => &[Family::Optimizer],
                Some(ArgType::SchedulerCall) => &[Family::Scheduler],
                Some(ArgType::LossCall) => &[Family::Loss],
                _ => &[],
            }
        };
        families
            .iter()
            .find_map(|fam| registry::lookup(*fam, name))
            .or_else(|| any_component(name))
    }

    /// The argument that the value opened by bracket `stack[d]` fills in
    /// its parent bracket.
    fn item_spec(&self, st: Stmt, stack: &[Frame], d: usize) -> Option<&'static ArgSpec> {
        let f = stack.get(d)?;
        let parent = self.frame_component(st, stack, d.checked_sub(1)?)?;
        match &f.parent_key {
            Some(k) => parent.arg(k),
            None => positional_spec(parent, f.parent_positional),
        }
    }

    /// Whether token `i` comes after the `on` of an objective statement.
    fn after_on(&self, st: Stmt, i: usize) -> bool {
        (st.first..i).any(|j| self.toks[j].text == "on" && self.toks[j].kind == TokKind::Word)
    }
}

/// Inside a train block: a setting's value after `key:`, else a key.
fn train_slot(slot: &mut Slot, f: &Frame, last: &str, at_item_start: bool) {
    let stage = registry::stage();
    if last == ":" {
        match f.cur_key.as_deref() {
            Some("evaluate") => slot.bindings.push(BindKind::Evaluator),
            Some("checkpoint") => slot.words.push("every"),
            Some(k) => {
                if let Some(spec) = stage.arg(k) {
                    fill_value(slot, spec);
                }
            }
            None => {}
        }
    } else if at_item_start || f.cur_key.is_some() && f.item_tokens > 0 {
        slot.args_of = Some(stage);
        slot.given = f.given.clone();
        slot.extra_keys = STAGE_ITEMS
            .iter()
            .copied()
            .filter(|k| !f.given.iter().any(|g| g == k))
            .collect();
    }
}

/// What may fill a value of argument `spec`.
fn fill_value(slot: &mut Slot, spec: &'static ArgSpec) {
    slot.value_of = Some(spec);
    match spec.ty {
        ArgType::Model => slot.bindings.push(BindKind::Model),
        ArgType::Data | ArgType::DataColumns(_) => slot.bindings.push(BindKind::Data),
        ArgType::Objective | ArgType::ClassifierObjective | ArgType::Objectives => {
            slot.bindings.push(BindKind::Objective)
        }
        ArgType::Evaluators => slot.bindings.push(BindKind::Evaluator),
        ArgType::OptimizerCall => slot.families.push(Family::Optimizer),
        ArgType::SchedulerCall => slot.families.push(Family::Scheduler),
        ArgType::LossCall => slot.families.push(Family::Loss),
        ArgType::Choice(words) => {
            slot.words.extend_from_slice(words);
            slot.bindings.push(BindKind::Let);
        }
        ArgType::Bool => {
            slot.words.extend(["true", "false"]);
            slot.bindings.push(BindKind::Let);
        }
        _ => slot.bindings.push(BindKind::Let),
    }
}

/// The argument a positional value fills: the `n`th, or a variadic one
/// before it (which takes the rest).
fn positional_spec(c: &'static Component, n: usize) -> Option<&'static ArgSpec> {
    let variadic = c.args.iter().position(|a| a.variadic).filter(|&v| v <= n);
    variadic
        .or((n < c.args.len()).then_some(n))
        .map(|i| &c.args[i])
}

/// A component of any family by name (modules, losses, ... in reference
/// order), for a call whose context says nothing.
pub fn any_component(name: &str) -> Option<&'static Component> {
    registry::all()
        .into_iter()
        .filter(|c| !matches!(c.family, Family::Stage | Family::ObjectiveOptions))
        .find(|c| c.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(src: &str) -> Slot {
        let at = src.find('|').unwrap();
        let text = src.replace('|', "");
        let doc = Doc::new(&text);
        let k = doc.toks.partition_point(|t| t.end <= at);
        doc.slot_at(k, at)
    }

    #[test]
    fn chain_positions() {
        let s = slot("model m = Transformer(\"x\") -> |");
        assert_eq!(s.families, vec![Family::Module]);
        assert_eq!(s.chain, Some(ChainPos::After));
        let s = slot("model m = |");
        assert_eq!(s.chain, Some(ChainPos::Base));
    }

    #[test]
    fn arguments_and_values() {
        let s = slot("model m = Transformer(\"x\") -> Pooling(|");
        assert_eq!(s.args_of.map(|c| c.name), Some("Pooling"));
        assert!(s.words.contains(&"mean"));
        let s =
            slot("objective o = MultipleNegativesRankingLoss(m, scale: 2) on d (batch_size: 4, |");
        assert_eq!(s.args_of.map(|c| c.name), Some("objective"));
        assert_eq!(s.given, vec!["batch_size".to_string()]);
        let s = slot("train m {\n optimizer: AdamW(|");
        assert_eq!(s.args_of.map(|c| c.name), Some("AdamW"));
        let s = slot("train m {\n epochs: 1\n |");
        assert_eq!(s.args_of.map(|c| c.name), Some("train"));
        let s = slot("train m {\n objectives: [|");
        assert_eq!(s.bindings, vec![BindKind::Objective]);
        let s = slot("train m { scheduler: |");
        assert_eq!(s.families, vec![Family::Scheduler]);
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let text = format!("train m {{ optimizer: {}", "AdamW(lr: [".repeat(20_000));
        let doc = Doc::new(&text);
        let s = doc.slot_at(doc.toks.len(), text.len());
        assert!(s.args_of.is_none() && s.value_of.is_none());
        let s = slot("train m { optimizer: AdamW(betas: [|");
        assert_eq!(s.value_of.map(|a| a.name), Some("betas"));
    }
}
