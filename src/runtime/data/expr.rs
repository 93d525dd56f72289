//! Evaluating a column expression (`col(4) / 5.0`, `map(col("label"), ...)`)
//! on one row of fields.

use crate::check::types::{ArithOpName, ColType, ColumnExpr, FieldRef};
use crate::data::list::{elements, Element};

/// A computed cell.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Text(String),
    Number(f64),
    /// The numbers `take(...)` read from a list field.
    List(Vec<f64>),
}

/// How the fields of a row are named (header or JSON keys).
pub(crate) struct Row<'a> {
    pub fields: &'a [String],
    pub names: Option<&'a [String]>,
}

impl Row<'_> {
    fn field(&self, f: &FieldRef) -> Result<&str, String> {
        let idx = match f {
            FieldRef::Index(i) => *i,
            FieldRef::Name(n) => self
                .names
                .and_then(|names| names.iter().position(|h| h == n))
                .ok_or_else(|| format!("the row has no field named `{n}`"))?,
        };
        self.fields.get(idx).map(String::as_str).ok_or_else(|| {
            format!(
                "the row has {} field(s); field {} is missing",
                self.fields.len(),
                match f {
                    FieldRef::Index(i) => i.to_string(),
                    FieldRef::Name(n) => format!("`{n}`"),
                }
            )
        })
    }
}

fn number(cell: Cell) -> Result<f64, String> {
    match cell {
        Cell::Number(n) => Ok(n),
        Cell::List(_) => Err("a list where one number belongs".to_string()),
        Cell::Text(t) => t
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("`{t}` is not a number")),
    }
}

pub(crate) fn eval(expr: &ColumnExpr, row: &Row) -> Result<Cell, String> {
    Ok(match expr {
        ColumnExpr::Field { field } => Cell::Text(row.field(field)?.to_string()),
        ColumnExpr::Const { value } => Cell::Number(*value),
        ColumnExpr::Arith { op, lhs, rhs } => {
            let (a, b) = (number(eval(lhs, row)?)?, number(eval(rhs, row)?)?);
            Cell::Number(match op {
                ArithOpName::Add => a + b,
                ArithOpName::Sub => a - b,
                ArithOpName::Mul => a * b,
                ArithOpName::Div => {
                    if b == 0.0 {
                        return Err("division by zero".to_string());
                    }
                    a / b
                }
            })
        }
        ColumnExpr::Item { input, index } => {
            let items = list_field(input, row)?;
            let found = items.len();
            match items.into_iter().nth(*index) {
                Some(Element::Text(t)) => Cell::Text(t),
                Some(Element::Number(n)) => Cell::Number(n),
                Some(Element::Other(what)) => {
                    return Err(format!("element {index} of the list is {what}"))
                }
                None => {
                    return Err(format!(
                        "the list has {found} element(s), too few for element {index} (from 0)"
                    ))
                }
            }
        }
        ColumnExpr::Take { input, n } => {
            let items = list_field(input, row)?;
            if items.len() < *n {
                return Err(format!(
                    "the list has {} element(s), fewer than the {n} taken",
                    items.len()
                ));
            }
            let mut out = Vec::with_capacity(*n);
            for (i, e) in items.into_iter().take(*n).enumerate() {
                match e {
                    Element::Number(x) => out.push(x),
                    Element::Text(t) => {
                        out.push(t.trim().parse::<f64>().map_err(|_| {
                            format!("element {i} of the list, `{t}`, is not a number")
                        })?)
                    }
                    Element::Other(what) => {
                        return Err(format!("element {i} of the list is {what}"))
                    }
                }
            }
            Cell::List(out)
        }
        ColumnExpr::Map { input, map } => {
            let key = match eval(input, row)? {
                Cell::Text(t) => t.trim().to_string(),
                Cell::Number(n) => format_number(n),
                Cell::List(_) => return Err("a list cannot be mapped to a label".to_string()),
            };
            match map.iter().find(|(k, _)| *k == key) {
                Some((_, v)) => Cell::Number(*v as f64),
                None => {
                    let known: Vec<&str> = map.iter().map(|(k, _)| k.as_str()).collect();
                    return Err(format!(
                        "label `{key}` is not in the label map (known: {})",
                        known.join(", ")
                    ));
                }
            }
        }
    })
}

/// The elements of the list field an `item` or `take` reads.
fn list_field(input: &ColumnExpr, row: &Row) -> Result<Vec<Element>, String> {
    let ColumnExpr::Field { field } = input else {
        return Err("a list is read from a field, col(...)".to_string());
    };
    elements(row.field(field)?)
}

fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

/// A cell converted to the column's type: text, float score or class.
pub(crate) enum Typed {
    Text(String),
    Score(f32),
    Class(i64),
    Scores(Vec<f32>),
}

pub(crate) fn typed(cell: Cell, ty: ColType) -> Result<Typed, String> {
    Ok(match ty {
        ColType::Text => Typed::Text(match cell {
            Cell::Text(t) => t,
            Cell::Number(n) => format_number(n),
            Cell::List(_) => return Err("a list where one text belongs".to_string()),
        }),
        ColType::FloatList => {
            let Cell::List(v) = cell else {
                return Err("one value where a list of scores belongs".to_string());
            };
            if let Some(x) = v.iter().find(|x| !x.is_finite()) {
                return Err(format!("score {x} in the list is not finite"));
            }
            Typed::Scores(v.into_iter().map(|x| x as f32).collect())
        }
        ColType::Float => {
            let v = number(cell)?;
            if !v.is_finite() {
                return Err(format!("score {v} is not finite"));
            }
            Typed::Score(v as f32)
        }
        ColType::Int => {
            let v = number(cell)?;
            if v.fract() != 0.0 || !v.is_finite() {
                return Err(format!("label {v} is not an integer"));
            }
            Typed::Class(v as i64)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(i: usize) -> Box<ColumnExpr> {
        Box::new(ColumnExpr::Field {
            field: FieldRef::Index(i),
        })
    }

    #[test]
    fn arithmetic_and_maps() {
        let fields: Vec<String> = vec!["x".into(), "4.5".into(), "entailment".into()];
        let row = Row {
            fields: &fields,
            names: None,
        };
        let e = ColumnExpr::Arith {
            op: ArithOpName::Div,
            lhs: field(1),
            rhs: Box::new(ColumnExpr::Const { value: 5.0 }),
        };
        assert_eq!(eval(&e, &row).unwrap(), Cell::Number(0.9));
        let m = ColumnExpr::Map {
            input: field(2),
            map: vec![("entailment".into(), 0), ("neutral".into(), 1)],
        };
        assert_eq!(eval(&m, &row).unwrap(), Cell::Number(0.0));
        let bad = ColumnExpr::Arith {
            op: ArithOpName::Mul,
            lhs: field(0),
            rhs: field(1),
        };
        assert_eq!(eval(&bad, &row).unwrap_err(), "`x` is not a number");
        assert!(eval(&field(7), &row)
            .unwrap_err()
            .contains("field 7 is missing"));
        let m2 = ColumnExpr::Map {
            input: field(0),
            map: vec![("a".into(), 0)],
        };
        assert!(eval(&m2, &row)
            .unwrap_err()
            .contains("not in the label map"));
    }
}
