//! Fields that hold a list (a JSON array in JSON Lines, a list column in
//! Parquet, a JSON array written into a TSV or CSV cell): what `item(...)`
//! and `take(...)` read. Readers hand every field on as text, a list as its
//! JSON form, so the checker and the runtime parse it here, the same way.

/// One element of a list field.
#[derive(Debug, Clone, PartialEq)]
pub enum Element {
    Text(String),
    Number(f64),
    /// Anything else (`null`, a nested array or object), named for errors.
    Other(&'static str),
}

/// The elements of a field that holds a list; an error saying what the
/// field holds instead.
pub fn elements(field: &str) -> Result<Vec<Element>, String> {
    let not_list = || {
        let shown: String = field.chars().take(40).collect();
        format!("the field is not a list but {shown:?}; take(...) and item(...) read JSON arrays (a Parquet list column reads as one)")
    };
    if !field.trim_start().starts_with('[') {
        return Err(not_list());
    }
    let value: serde_json::Value = serde_json::from_str(field).map_err(|e| {
        format!("the field is not a valid JSON array ({e}); Python's repr of a list (single quotes) is not JSON")
    })?;
    let serde_json::Value::Array(items) = value else {
        return Err(not_list());
    };
    Ok(items
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Element::Text(s),
            serde_json::Value::Number(n) => n
                .as_f64()
                .map_or(Element::Other("a number out of range"), Element::Number),
            serde_json::Value::Null => Element::Other("null"),
            serde_json::Value::Bool(_) => Element::Other("a boolean"),
            serde_json::Value::Array(_) => Element::Other("a list"),
            serde_json::Value::Object(_) => Element::Other("an object"),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_of_texts_numbers_and_what_is_not_a_list() {
        assert_eq!(
            elements(r#"["a", 2.5, null]"#).unwrap(),
            vec![
                Element::Text("a".into()),
                Element::Number(2.5),
                Element::Other("null")
            ]
        );
        assert!(elements("plain text").unwrap_err().contains("not a list"));
        assert!(elements("['a', 'b']").unwrap_err().contains("repr"));
        assert!(elements("[1, 2").is_err());
        assert_eq!(elements("[]").unwrap(), vec![]);
    }
}
