//! The abstract syntax tree of a `.stp` file; every node keeps its span.

use crate::diag::Span;

/// A name as written, with its place.
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A literal or reference in argument position.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind {
    Int(i64),
    Float(f64),
    /// `10%`, stored as written (10.0).
    Percent(f64),
    Bool(bool),
    /// A string, unescaped but not yet interpolated.
    Str(String),
    List(Vec<Value>),
    Map(Vec<(MapKey, Value)>),
    Call(Call),
    Ident(Ident),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub kind: ValueKind,
    pub span: Span,
}

/// The key of a `{key: value}` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct MapKey {
    pub text: String,
    pub span: Span,
}

/// `Name(args)` or a bare `Name`.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub name: Ident,
    pub args: Vec<Arg>,
    /// Whether the call had parentheses.
    pub parens: bool,
    pub span: Span,
}

/// A positional (`16`) or named (`batch_size: 16`) argument.
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Value,
    pub span: Span,
}

/// Arithmetic operators of column expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// A column expression: `col(4) / 5.0`, `map(col("label"), {...})`.
#[derive(Debug, Clone, PartialEq)]
pub enum ColExprKind {
    Number(f64),
    Call {
        name: Ident,
        args: Vec<ColExpr>,
    },
    Binary {
        op: ArithOp,
        lhs: Box<ColExpr>,
        rhs: Box<ColExpr>,
    },
    /// A plain value as a function argument (a string, a map...).
    Value(Value),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColExpr {
    pub kind: ColExprKind,
    pub span: Span,
}

/// `name: expr` in a data source's column block.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: Ident,
    pub expr: ColExpr,
}

/// `EVALUATOR.METRIC`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRef {
    pub evaluator: Ident,
    pub metric: Ident,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Ge,
    Le,
    Gt,
    Lt,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Ge => ">=",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Lt => "<",
        }
    }
}

/// One entry of a `train { ... }` block.
#[derive(Debug, Clone, PartialEq)]
pub enum StageItem {
    /// `evaluate: dev every 200 steps`
    Evaluate {
        what: Value,
        every: Option<Value>,
        span: Span,
    },
    /// `checkpoint: every 500 steps, keep 2`
    Checkpoint {
        every: Value,
        keep: Option<Value>,
        span: Span,
    },
    /// `key: value`
    Setting { key: Ident, value: Value },
}

#[derive(Debug, Clone, PartialEq)]
pub enum StmtKind {
    Let {
        name: Ident,
        value: Value,
    },
    Model {
        name: Ident,
        chain: Vec<Call>,
    },
    Data {
        name: Ident,
        source: Call,
        columns: Option<Vec<ColumnDef>>,
        /// Span of the `{ ... }` block.
        columns_span: Option<Span>,
        limit: Option<Value>,
    },
    Objective {
        name: Ident,
        loss: Call,
        data: Ident,
        options: Vec<Arg>,
        options_span: Option<Span>,
    },
    Evaluator {
        name: Ident,
        call: Call,
    },
    Train {
        model: Ident,
        name: Option<Ident>,
        items: Vec<StageItem>,
    },
    Save {
        model: Ident,
        path: Value,
        best: Option<MetricRef>,
    },
    Expect {
        metric: MetricRef,
        op: CmpOp,
        value: Value,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

/// A parsed file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct File {
    pub stmts: Vec<Stmt>,
}
