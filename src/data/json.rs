//! `jsonl`: JSON Lines rows with their keys in file order, so that a
//! column's index means the same to the checker and to the runtime.

use super::{ArgProblem, Format, ReaderEntry, PATH, SKIP_BAD_ROWS};
use crate::registry::{Args, Component, Family};

pub const ENTRY: ReaderEntry = ReaderEntry {
    spec: Component {
        name: "jsonl",
        family: Family::Reader,
        doc: "JSON Lines: one JSON object per line; columns are chosen by key (`col(\"text\")`).",
        args: &[PATH, SKIP_BAD_ROWS],
        ..Component::BASE
    },
    format,
};

fn format(_: &Args) -> Result<Format, ArgProblem> {
    Ok(Format::JsonLines)
}

/// A JSON object with its keys in file order.
pub struct OrderedObject(pub Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for OrderedObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<OrderedObject, A::Error> {
                let mut v = Vec::new();
                while let Some((k, x)) = m.next_entry::<String, serde_json::Value>()? {
                    v.push((k, x));
                }
                Ok(OrderedObject(v))
            }
        }
        d.deserialize_map(V)
    }
}

impl OrderedObject {
    /// Keys and values of the object, strings as they are and other values
    /// as JSON text.
    pub fn into_fields(self) -> (Vec<String>, Vec<String>) {
        self.0
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .unzip()
    }
}
