//! Go to definition: from a use of a binding (a name, or `${NAME}` in a
//! string) to the name in its `let`/`model`/`data`/`objective`/
//! `evaluator` statement.

use lsp_types::{GotoDefinitionResponse, Location, Position, Uri};

use super::scan::{Doc, TokKind};
use super::text::LineMap;
use crate::diag::Span;

/// Where the binding used at `pos` is defined (its first definition, the
/// one the checker keeps), if the word there names one.
pub fn definition(
    uri: &Uri,
    text: &str,
    lines: &LineMap,
    pos: Position,
) -> Option<GotoDefinitionResponse> {
    let offset = lines.offset(text, pos);
    let doc = Doc::new(text);
    let k = doc.token_at(offset)?;
    let t = doc.toks[k];
    let name = match t.kind {
        // `name:` is an argument or setting name, not a use.
        TokKind::Word if doc.toks.get(k + 1).is_some_and(|n| n.text == ":") => return None,
        TokKind::Word => t.text,
        TokKind::Str => doc.interpolation_at(k, offset)?.0,
        _ => return None,
    };
    let b = doc.binding(name)?;
    Some(GotoDefinitionResponse::Scalar(Location::new(
        uri.clone(),
        lines.range(text, Span::new(b.start, b.end)),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_lead_to_the_name() {
        let src = "let root = \"r\"\nmodel m = Transformer(\"${root}/x\") -> Pooling(mean)\n\
                   train m { epochs: 1 }";
        let lines = LineMap::new(src);
        let uri: Uri = "file:///p.stp".parse().unwrap();
        let at = |needle: &str| lines.position(src, src.find(needle).unwrap() + 1);
        let go = |p| match definition(&uri, src, &lines, p) {
            Some(GotoDefinitionResponse::Scalar(l)) => Some(l.range),
            _ => None,
        };
        let m = lines.range(src, Span::new(21, 22));
        assert_eq!(go(at("m {")), Some(m));
        let root = lines.range(src, Span::new(4, 8));
        assert_eq!(go(at("root}")), Some(root));
        assert_eq!(go(at("epochs")), None);
    }
}
