//! TSDAE's input noise (sentence-transformers' `DenoisingAutoEncoderDataset.delete`):
//! split a text into words, delete each with probability `ratio`, keep at
//! least one, and join the rest back into text.
//!
//! sentence-transformers splits with NLTK's `word_tokenize` (Penn Treebank
//! rules) and joins with its `TreebankWordDetokenizer`. stpipe splits by
//! the same main rules without NLTK: whitespace, then leading quotes and
//! brackets, trailing punctuation, and the contractions `n't`, `'s`, `'re`,
//! `'ve`, `'ll`, `'d`, `'m` as words of their own; joining puts no space
//! before closing punctuation and contractions or after opening brackets.
//! The two differ on rarer cases (abbreviations inside a sentence, quotes
//! written as two apostrophes), which only shifts which pieces count as
//! words.

use crate::runtime::train::rng::Rng;

const OPENING: &[char] = &['(', '[', '{', '“', '‘', '"'];
const CLOSING: &[char] = &[
    '.', ',', ';', ':', '!', '?', ')', ']', '}', '%', '”', '’', '"', '\'',
];
const CONTRACTIONS: &[&str] = &["'s", "'re", "'ve", "'ll", "'d", "'m"];

/// The words of `text`, Treebank-style.
pub fn words(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for chunk in text.split_whitespace() {
        let mut rest = chunk;
        while let Some(c) = rest.chars().next().filter(|c| OPENING.contains(c)) {
            if rest.len() == c.len_utf8() {
                break;
            }
            out.push(&rest[..c.len_utf8()]);
            rest = &rest[c.len_utf8()..];
        }
        // Trailing punctuation, innermost last: peel it off, then put it
        // back in order. A period stays on a word with another period
        // inside it (an abbreviation: "U.S.", "e.g.").
        let mut tail = Vec::new();
        while let Some(c) = rest.chars().next_back().filter(|c| CLOSING.contains(c)) {
            let body = &rest[..rest.len() - c.len_utf8()];
            if body.is_empty() || (c == '.' && body.contains('.')) {
                break;
            }
            tail.push(&rest[body.len()..]);
            rest = body;
        }
        // The suffix must leave a word before it, and start on a character.
        let ends_with = |s: &str| {
            let at = rest.len().saturating_sub(s.len());
            at > 0 && rest.is_char_boundary(at) && rest[at..].eq_ignore_ascii_case(s)
        };
        let split = std::iter::once("n't")
            .chain(CONTRACTIONS.iter().copied())
            .find(|s| ends_with(s))
            .map(|s| rest.len() - s.len());
        match split {
            Some(at) => {
                out.push(&rest[..at]);
                out.push(&rest[at..]);
            }
            None => out.push(rest),
        }
        out.extend(tail.into_iter().rev());
    }
    out
}

/// `words` joined back into text.
pub fn join(words: &[&str]) -> String {
    let mut out = String::new();
    let mut open_quote = false;
    let mut glue_next = false;
    for w in words {
        let is_quote = *w == "\"";
        let closing = (w.chars().count() == 1 && w.chars().all(|c| CLOSING.contains(&c)))
            || CONTRACTIONS.iter().any(|c| w.eq_ignore_ascii_case(c))
            || w.eq_ignore_ascii_case("n't");
        let glue_before = match is_quote {
            true => open_quote,
            false => closing,
        };
        if !out.is_empty() && !glue_before && !glue_next {
            out.push(' ');
        }
        out.push_str(w);
        glue_next = match is_quote {
            true => !open_quote,
            false => w.chars().count() == 1 && w.chars().all(|c| OPENING.contains(&c) || c == '$'),
        };
        if is_quote {
            open_quote = !open_quote;
        }
    }
    out
}

/// `text` with each word deleted with probability `ratio` (at least one
/// kept); a text without words is returned as it is.
pub fn delete(text: &str, ratio: f64, rng: &mut Rng) -> String {
    let ws = words(text);
    if ws.is_empty() {
        return text.to_string();
    }
    let mut keep: Vec<bool> = ws
        .iter()
        .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 > ratio)
        .collect();
    if !keep.contains(&true) {
        keep[rng.below(ws.len() as u64) as usize] = true;
    }
    let kept: Vec<&str> = ws
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(w, _)| *w)
        .collect();
    join(&kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_the_treebank_tokenizer() {
        assert_eq!(
            words("A man isn't playing (the) guitar, he's singing."),
            vec![
                "A", "man", "is", "n't", "playing", "(", "the", ")", "guitar", ",", "he", "'s",
                "singing", "."
            ]
        );
        assert_eq!(words("  "), Vec::<&str>::new());
        assert_eq!(words("U.S. policy!?"), vec!["U.S.", "policy", "!", "?"]);
        assert_eq!(words("\"Quoted\""), vec!["\"", "Quoted", "\""]);
        assert_eq!(words("..."), vec!["..."]);
        // Contractions in any case, never splitting inside a character.
        assert_eq!(words("DON'T"), vec!["DO", "N'T"]);
        assert_eq!(words("n't é's"), vec!["n't", "é", "'s"]);
        assert_eq!(words("İn't"), vec!["İ", "n't"]);
    }

    #[test]
    fn joins_back_into_text() {
        for s in [
            "A man isn't playing (the) guitar, he's singing.",
            "He said \"no\" twice.",
            "It costs $5, or 10%.",
        ] {
            assert_eq!(join(&words(s)), s);
        }
    }

    #[test]
    fn deletes_words_keeping_at_least_one() {
        let text = "the quick brown fox jumps over the lazy dog";
        let mut rng = Rng::new(3);
        let mut kept = 0usize;
        for _ in 0..200 {
            let d = delete(text, 0.6, &mut rng);
            let n = words(&d).len();
            assert!((1..=9).contains(&n), "{d}");
            kept += n;
        }
        // About 40% of the 9 words survive.
        let mean = kept as f64 / 200.0;
        assert!((mean - 3.6).abs() < 0.5, "{mean}");
        assert_eq!(delete("", 0.6, &mut rng), "");
        assert_eq!(words(&delete("word", 1.0, &mut rng)), vec!["word"]);
    }
}
