//! Binding call arguments to registry argument specs: names and
//! positions, variadic arguments, duplicates, missing arguments and
//! defaults, ranges. Each value is converted by [`super::convert`]; the
//! constraints between arguments are checked by [`super::rules`].

use std::collections::BTreeMap;

use super::Checker;
use crate::check::types::{ArgValue, Args};
use crate::diag::{Diag, Span};
use crate::registry::{self, ArgSpec, Component, Family};
use crate::syntax::ast::{self, Value, ValueKind};

/// Arguments bound to their specs: value and the span it came from (the
/// call's span for defaults).
pub(crate) type BoundArgs = BTreeMap<String, (ArgValue, Span)>;

/// The values of bound arguments, as the runtime reads them.
pub(crate) fn to_args(comp: &'static Component, bound: &BoundArgs) -> Args {
    Args::new(
        comp,
        bound
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect(),
    )
}

/// One call's arguments while they are bound.
#[derive(Default)]
struct Binding {
    out: BoundArgs,
    /// Each spec given so far, and where.
    given: BTreeMap<&'static str, Span>,
    /// The next spec a positional argument binds to.
    pos: usize,
    /// A variadic argument collecting positional values, and its span.
    variadic: Option<(&'static ArgSpec, Vec<Value>, Span)>,
    failed: bool,
}

impl Binding {
    /// A converted value for `spec` (`None`: reported).
    fn record(&mut self, spec: &ArgSpec, value: Option<(ArgValue, Span)>) {
        match value {
            Some(v) => {
                self.out.insert(spec.name.to_string(), v);
            }
            None => self.failed = true,
        }
    }
}

impl Checker<'_> {
    /// Bind `args` of a call to `comp`'s argument specs. Reports unknown,
    /// duplicate, missing and mistyped arguments; `None` if any was wrong.
    /// Defaults are filled in.
    pub(crate) fn bind(
        &mut self,
        comp: &'static Component,
        args: &[ast::Arg],
        call_span: Span,
    ) -> Option<BoundArgs> {
        let what = comp_label(comp);
        let mut b = Binding::default();
        for a in args {
            let spec = match &a.name {
                Some(n) => self.named_spec(comp, n, &what),
                None => {
                    // Positional: more values of a variadic argument, or
                    // the next spec.
                    if let Some((_, vals, sp)) = &mut b.variadic {
                        vals.push(a.value.clone());
                        *sp = Span::new(sp.start, a.span.end);
                        continue;
                    }
                    let spec = self.positional_spec(comp, b.pos, a.span, &what);
                    if let Some(s) = spec.filter(|s| s.variadic) {
                        b.pos += 1;
                        b.variadic = Some((s, vec![a.value.clone()], a.span));
                        b.given.insert(s.name, a.span);
                        continue;
                    }
                    b.pos += usize::from(spec.is_some());
                    spec
                }
            };
            let Some(spec) = spec else {
                b.failed = true;
                continue;
            };
            if b.given.contains_key(spec.name) {
                self.err(
                    Diag::error(
                        "duplicate-argument",
                        a.span,
                        format!("argument `{}` of {what} is given twice", spec.name),
                    )
                    .help("give each argument once"),
                );
                b.failed = true;
                continue;
            }
            b.given.insert(spec.name, a.span);
            let value = if spec.variadic {
                b.variadic = None;
                let vals = match &a.value.kind {
                    ValueKind::List(items) => items.clone(),
                    _ => vec![a.value.clone()],
                };
                self.convert_list(&vals, spec, &what).map(|v| (v, a.span))
            } else {
                let ctx = format!("argument `{}` of {what}", spec.name);
                self.convert(&a.value, spec.ty, &ctx)
                    .and_then(|v| self.in_range(v, spec, a.value.span, &ctx))
                    .map(|v| (v, a.value.span))
            };
            b.record(spec, value);
        }
        if let Some((spec, vals, sp)) = b.variadic.take() {
            // A single list as the only variadic value: its items.
            let vals = match vals.as_slice() {
                [Value {
                    kind: ValueKind::List(items),
                    ..
                }] => items.clone(),
                _ => vals,
            };
            let value = self.convert_list(&vals, spec, &what).map(|v| (v, sp));
            b.record(spec, value);
        }
        self.fill_defaults(comp, &mut b, call_span, &what);
        let ok = !b.failed && self.check_rules(comp, &b.out, call_span);
        ok.then_some(b.out)
    }

    /// The spec of an argument given by name.
    fn named_spec(
        &mut self,
        comp: &'static Component,
        n: &ast::Ident,
        what: &str,
    ) -> Option<&'static ArgSpec> {
        if let Some(s) = comp.arg(&n.name) {
            return Some(s);
        }
        let names: Vec<&str> = comp.args.iter().map(|a| a.name).collect();
        let help = match registry::did_you_mean(&n.name, names.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None if names.is_empty() => format!("{what} takes no arguments"),
            None => format!("{what} takes: {}", names.join(", ")),
        };
        self.err(
            Diag::error(
                "unknown-argument",
                n.span,
                format!("unknown argument `{}` of {what}", n.name),
            )
            .help(help),
        );
        None
    }

    /// The spec at position `pos`, reporting one argument too many.
    fn positional_spec(
        &mut self,
        comp: &'static Component,
        pos: usize,
        span: Span,
        what: &str,
    ) -> Option<&'static ArgSpec> {
        if let Some(s) = comp.args.get(pos) {
            return Some(s);
        }
        let n = comp.args.len();
        let help = if n == 0 {
            format!("{what} takes no arguments")
        } else {
            let names: Vec<&str> = comp.args.iter().map(|a| a.name).collect();
            format!("{what} takes: {}", names.join(", "))
        };
        self.err(
            Diag::error(
                "too-many-arguments",
                span,
                format!("too many arguments for {what} (at most {n})"),
            )
            .help(help),
        );
        None
    }

    /// Reports required arguments not given; fills in the defaults of the
    /// others (with the call's span).
    fn fill_defaults(&mut self, comp: &Component, b: &mut Binding, call_span: Span, what: &str) {
        for spec in comp.args {
            if b.given.contains_key(spec.name) {
                continue;
            }
            if spec.required {
                self.err(
                    Diag::error(
                        "missing-argument",
                        call_span,
                        format!("missing argument `{}` of {what}", spec.name),
                    )
                    .help(format!(
                        "add `{}: ...` ({}): {}",
                        spec.name,
                        spec.ty.describe(),
                        spec.doc
                    )),
                );
                b.failed = true;
            } else if let Some(v) = spec.default_value() {
                b.out.insert(spec.name.to_string(), (v, call_span));
            }
        }
    }

    /// `v` when it lies in the argument's declared range.
    fn in_range(&mut self, v: ArgValue, spec: &ArgSpec, span: Span, ctx: &str) -> Option<ArgValue> {
        let Some(x) = v.as_f64() else {
            return Some(v);
        };
        if spec.range.contains(x) {
            return Some(v);
        }
        self.err(
            Diag::error(
                "out-of-range",
                span,
                format!("{ctx} must be {}, not {x}", spec.range.describe()),
            )
            .help(format!("{}: {}", spec.name, spec.doc)),
        );
        None
    }

    /// Every value of a variadic argument, each converted and in range.
    fn convert_list(&mut self, vals: &[Value], spec: &ArgSpec, what: &str) -> Option<ArgValue> {
        let mut items = Vec::new();
        let mut ok = true;
        for v in vals {
            let ctx = format!("argument `{}` of {what}", spec.name);
            match self
                .convert(v, spec.ty, &ctx)
                .and_then(|x| self.in_range(x, spec, v.span, &ctx))
            {
                Some(x) => items.push(x),
                None => ok = false,
            }
        }
        ok.then_some(ArgValue::List(items))
    }
}

/// How messages name the component: `` `AdamW` ``, "the train stage".
pub(super) fn comp_label(c: &Component) -> String {
    match c.family {
        Family::Stage => "the train stage".to_string(),
        Family::ObjectiveOptions => "the objective".to_string(),
        _ => format!("`{}`", c.name),
    }
}
