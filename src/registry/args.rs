//! Checked argument values, and [`Args`]: the arguments of one component
//! call, every declared argument present (defaults filled in by the checker
//! from the component's description).
//!
//! The runtime reads arguments only through the typed accessors of
//! [`Args`], by the names the description declares; a name the
//! description does not declare is an error, so a constructor cannot
//! quietly read an option under another name (as `num_cycles` once was
//! read as `cycles` and ignored). The catalogue test builds every
//! component from its defaults, which exercises every accessor.

use std::collections::BTreeMap;

use serde::Serialize;

use super::choices::Choice;
use super::{ArgType, Component};

/// A resolved argument value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ArgValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    /// A bare word from a fixed set, or a binding name.
    Name(String),
    List(Vec<ArgValue>),
    Warmup(Warmup),
    Call(CallValue),
    /// Names to strings (a map's keys in order of first appearance).
    StrMap(Vec<(String, String)>),
}

impl ArgValue {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ArgValue::Int(i) => Some(*i as f64),
            ArgValue::Float(f) => Some(*f),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ArgValue::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            ArgValue::Str(s) | ArgValue::Name(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            ArgValue::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

/// A component call with all its arguments resolved (defaults included):
/// an optimizer or scheduler in a train stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallValue {
    pub name: String,
    pub args: Args,
    /// The binding the call was declared as (a Sequential's evaluators:
    /// their metrics are reported under this name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
}

/// Warm-up length.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Warmup {
    Steps(u64),
    /// A share of all training steps, in [0, 1].
    Fraction(f64),
}

/// Why the runtime could not read an argument. A checked pipeline never
/// causes one: it means a component reads an argument its description
/// does not declare, or with another type.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`{component}`: argument `{name}` {problem} (an stpipe bug: the registry entry and its constructor disagree)")]
pub struct ArgError {
    pub component: String,
    pub name: String,
    pub problem: String,
}

/// The checked arguments of one call of a component.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(transparent)]
pub struct Args {
    #[serde(skip)]
    component: Option<&'static Component>,
    values: BTreeMap<String, ArgValue>,
}

impl PartialEq for Args {
    fn eq(&self, other: &Self) -> bool {
        self.component_name() == other.component_name() && self.values == other.values
    }
}

impl Args {
    /// Arguments of `component`; the checker fills in every default.
    pub fn new(component: &'static Component, values: BTreeMap<String, ArgValue>) -> Self {
        Args {
            component: Some(component),
            values,
        }
    }

    /// The component's defaults only (for tests and built-in stages).
    pub fn defaults(component: &'static Component) -> Self {
        let values = component
            .args
            .iter()
            .filter_map(|a| Some((a.name.to_string(), a.default_value()?)))
            .collect();
        Args::new(component, values)
    }

    /// With one value set (tests, and components built by other components).
    pub fn with(mut self, name: &str, value: ArgValue) -> Self {
        self.values.insert(name.to_string(), value);
        self
    }

    /// The component these arguments belong to.
    pub fn component_name(&self) -> &'static str {
        self.component.map_or("?", |c| c.name)
    }

    /// Every value, by name.
    pub fn values(&self) -> &BTreeMap<String, ArgValue> {
        &self.values
    }

    /// The data sources the arguments name (their declared type is a data
    /// source), in declaration order.
    pub fn data_sources(&self) -> Vec<&str> {
        self.bindings(|t| matches!(t, ArgType::Data | ArgType::DataColumns(_)))
    }

    /// The models the arguments name, in declaration order.
    pub fn models(&self) -> Vec<&str> {
        self.bindings(|t| t == ArgType::Model)
    }

    /// The bindings of the arguments whose type `want` accepts, those of
    /// nested calls included (a wrapped loss's model and teacher).
    fn bindings(&self, want: impl Fn(ArgType) -> bool + Copy) -> Vec<&str> {
        let Some(c) = self.component else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for a in c.args {
            match self.values.get(a.name) {
                Some(ArgValue::Call(call)) => out.extend(call.args.bindings(want)),
                // Sequential's evaluators, each a call.
                Some(ArgValue::List(items))
                    if items.iter().any(|i| matches!(i, ArgValue::Call(_))) =>
                {
                    for i in items {
                        if let ArgValue::Call(call) = i {
                            out.extend(call.args.bindings(want));
                        }
                    }
                }
                Some(v) if want(a.ty) => out.extend(v.as_str()),
                _ => {}
            }
        }
        out
    }

    fn err(&self, name: &str, problem: impl Into<String>) -> ArgError {
        ArgError {
            component: self.component_name().to_string(),
            name: name.to_string(),
            problem: problem.into(),
        }
    }

    /// Whether the component declares an argument `name`.
    pub fn declares(&self, name: &str) -> bool {
        self.component.is_some_and(|c| c.arg(name).is_some())
    }

    /// The raw value of a declared argument; `None` when it was not given
    /// and has no default.
    pub fn get<'a>(&'a self, name: &str) -> Result<Option<&'a ArgValue>, ArgError> {
        if let Some(c) = self.component {
            if c.arg(name).is_none() {
                return Err(self.err(name, "is not declared"));
            }
        }
        Ok(self.values.get(name))
    }

    fn need<'a>(&'a self, name: &str) -> Result<&'a ArgValue, ArgError> {
        self.get(name)?
            .ok_or_else(|| self.err(name, "has no value and no default"))
    }

    fn typed<'a, T>(
        &'a self,
        name: &str,
        what: &str,
        f: impl FnOnce(&'a ArgValue) -> Option<T>,
    ) -> Result<T, ArgError> {
        let v = self.need(name)?;
        f(v).ok_or_else(|| self.err(name, format!("is not {what}: {v:?}")))
    }

    pub fn f64(&self, name: &str) -> Result<f64, ArgError> {
        self.typed(name, "a number", ArgValue::as_f64)
    }

    pub fn i64(&self, name: &str) -> Result<i64, ArgError> {
        self.typed(name, "an integer", ArgValue::as_i64)
    }

    pub fn usize(&self, name: &str) -> Result<usize, ArgError> {
        self.typed(name, "a count", |v| {
            v.as_i64().and_then(|i| usize::try_from(i).ok())
        })
    }

    pub fn bool(&self, name: &str) -> Result<bool, ArgError> {
        self.typed(name, "true or false", ArgValue::as_bool)
    }

    /// A string, or a binding name (model, data source, objective).
    pub fn str(&self, name: &str) -> Result<&str, ArgError> {
        self.typed(name, "a string or name", ArgValue::as_str)
    }

    /// An optional count (an argument declared without a default).
    pub fn opt_usize(&self, name: &str) -> Result<Option<usize>, ArgError> {
        match self.get(name)? {
            None => Ok(None),
            Some(_) => self.usize(name).map(Some),
        }
    }

    /// An optional string or name.
    /// A map from names to strings; an absent argument is an empty map.
    pub fn str_map(&self, name: &str) -> Result<Vec<(String, String)>, ArgError> {
        Ok(match self.get(name)? {
            Some(ArgValue::StrMap(m)) => m.clone(),
            _ => Vec::new(),
        })
    }

    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, ArgError> {
        match self.get(name)? {
            None => Ok(None),
            Some(_) => self.str(name).map(Some),
        }
    }

    /// An optional number.
    pub fn opt_f64(&self, name: &str) -> Result<Option<f64>, ArgError> {
        match self.get(name)? {
            None => Ok(None),
            Some(_) => self.f64(name).map(Some),
        }
    }

    /// A word of a closed set.
    pub fn choice<C: Choice>(&self, name: &str) -> Result<C, ArgError> {
        let v = self.need(name)?;
        v.as_str().and_then(C::from_name).ok_or_else(|| {
            self.err(
                name,
                format!("is not one of {}: {v:?}", C::NAMES.join(", ")),
            )
        })
    }

    /// A list of words of a closed set (variadic arguments).
    pub fn choices<C: Choice>(&self, name: &str) -> Result<Vec<C>, ArgError> {
        match self.need(name)? {
            ArgValue::List(items) => items
                .iter()
                .map(|v| {
                    v.as_str().and_then(C::from_name).ok_or_else(|| {
                        self.err(
                            name,
                            format!("holds {v:?}, not one of {}", C::NAMES.join(", ")),
                        )
                    })
                })
                .collect(),
            single => single
                .as_str()
                .and_then(C::from_name)
                .map(|c| vec![c])
                .ok_or_else(|| self.err(name, format!("is not a list of {}", C::NAMES.join(", ")))),
        }
    }

    /// A list of numbers.
    pub fn f64_list(&self, name: &str) -> Result<Vec<f64>, ArgError> {
        match self.need(name)? {
            ArgValue::List(items) => items
                .iter()
                .map(|v| {
                    v.as_f64()
                        .ok_or_else(|| self.err(name, "holds a non-number"))
                })
                .collect(),
            v => Err(self.err(name, format!("is not a list: {v:?}"))),
        }
    }

    /// A list of counts (a variadic `Count` argument).
    pub fn usize_list(&self, name: &str) -> Result<Vec<usize>, ArgError> {
        match self.need(name)? {
            ArgValue::List(items) => items
                .iter()
                .map(|v| {
                    v.as_i64()
                        .and_then(|i| usize::try_from(i).ok())
                        .ok_or_else(|| self.err(name, "holds a non-count"))
                })
                .collect(),
            v => Err(self.err(name, format!("is not a list: {v:?}"))),
        }
    }

    /// An optional list of numbers (a variadic `Float` argument without a
    /// default).
    pub fn opt_f64_list(&self, name: &str) -> Result<Option<Vec<f64>>, ArgError> {
        match self.get(name)? {
            None => Ok(None),
            Some(_) => self.f64_list(name).map(Some),
        }
    }

    /// A warm-up length.
    pub fn warmup(&self, name: &str) -> Result<Warmup, ArgError> {
        self.typed(name, "a warm-up length", |v| match v {
            ArgValue::Warmup(w) => Some(*w),
            ArgValue::Int(i) if *i >= 0 => Some(Warmup::Steps(*i as u64)),
            _ => None,
        })
    }

    /// A nested component call (an optimizer, a scheduler).
    pub fn call(&self, name: &str) -> Result<&CallValue, ArgError> {
        self.typed(name, "a component call", |v| match v {
            ArgValue::Call(c) => Some(c),
            _ => None,
        })
    }
}
