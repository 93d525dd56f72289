//! `stpipe lsp` driven over stdio as an editor drives it: `lsp-server`'s
//! message framing and `lsp-types`' typed requests, notifications and
//! results (the client side of the same LSP library). Every read has a
//! timeout, so a broken server fails the test instead of hanging it.

use crate::common;

use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lsp_server::{Message, Notification, Request, RequestId};
use lsp_types::notification::{
    DidChangeTextDocument, DidOpenTextDocument, Exit, Initialized, Notification as _,
    PublishDiagnostics,
};
use lsp_types::request::{Completion, GotoDefinition, HoverRequest, Initialize, Shutdown};
use lsp_types::{
    CompletionParams, CompletionResponse, DiagnosticSeverity, DidChangeTextDocumentParams,
    DidOpenTextDocumentParams, GotoDefinitionParams, GotoDefinitionResponse, HoverContents,
    HoverParams, InitializeParams, NumberOrString, Position, PublishDiagnosticsParams, Range,
    TextDocumentContentChangeEvent, TextDocumentIdentifier, TextDocumentItem,
    TextDocumentPositionParams, Uri, VersionedTextDocumentIdentifier,
};
use stpipe::registry::{self, Family};

/// Longest wait for any one message.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A client of one `stpipe lsp` process.
struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    messages: mpsc::Receiver<Message>,
    next_id: i32,
    /// Notifications that came while a response was awaited.
    pending: VecDeque<Notification>,
}

impl Client {
    /// Start the server in `dir`, with no model search path or Hub cache
    /// of the machine's (diagnostics must not depend on them).
    fn start(dir: &Path) -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stpipe"))
            .arg("lsp")
            .current_dir(dir)
            .env("STPIPE_MODEL_PATH", dir.join("no-models"))
            .env("HF_HOME", dir.join("no-hf"))
            .env_remove("HF_HUB_CACHE")
            .env_remove("HUGGINGFACE_HUB_CACHE")
            .env_remove("STPIPE_DATA")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn stpipe lsp");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            while let Ok(Some(m)) = Message::read(&mut r) {
                if tx.send(m).is_err() {
                    break;
                }
            }
        });
        Client {
            stdin: child.stdin.take(),
            child,
            messages: rx,
            next_id: 0,
            pending: VecDeque::new(),
        }
    }

    fn send(&mut self, m: Message) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        m.write(stdin).expect("write to the server");
        stdin.flush().expect("flush");
    }

    fn recv(&mut self) -> Message {
        self.messages
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|e| panic!("no message from the server within {TIMEOUT:?}: {e}"))
    }

    fn request<R: lsp_types::request::Request>(&mut self, params: R::Params) -> R::Result {
        self.next_id += 1;
        let id = RequestId::from(self.next_id);
        self.send(Request::new(id.clone(), R::METHOD.to_string(), params).into());
        loop {
            match self.recv() {
                Message::Response(r) if r.id == id => {
                    let v = r.response_result.unwrap_or_else(|e| {
                        panic!("{} failed: {} ({})", R::METHOD, e.message, e.code)
                    });
                    return serde_json::from_value(v).expect("a typed result");
                }
                Message::Notification(n) => self.pending.push_back(n),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    fn notify<N: lsp_types::notification::Notification>(&mut self, params: N::Params) {
        self.send(Notification::new(N::METHOD.to_string(), params).into());
    }

    /// The diagnostics published for `uri` at `version` (earlier ones are
    /// skipped).
    fn diagnostics(&mut self, uri: &Uri, version: i32) -> PublishDiagnosticsParams {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            assert!(
                Instant::now() < deadline,
                "no diagnostics for version {version}"
            );
            let n = match self.pending.pop_front() {
                Some(n) => n,
                None => match self.recv() {
                    Message::Notification(n) => n,
                    other => panic!("unexpected {other:?}"),
                },
            };
            if n.method != PublishDiagnostics::METHOD {
                continue;
            }
            let p: PublishDiagnosticsParams = serde_json::from_value(n.params).expect("params");
            if p.uri == *uri && p.version == Some(version) {
                return p;
            }
        }
    }

    fn open(&mut self, uri: &Uri, text: &str) {
        self.notify::<DidOpenTextDocument>(DidOpenTextDocumentParams {
            text_document: TextDocumentItem::new(uri.clone(), "stp".into(), 1, text.into()),
        });
    }

    fn change(&mut self, uri: &Uri, version: i32, text: &str) {
        self.notify::<DidChangeTextDocument>(DidChangeTextDocumentParams {
            text_document: VersionedTextDocumentIdentifier::new(uri.clone(), version),
            content_changes: vec![TextDocumentContentChangeEvent {
                range: None,
                range_length: None,
                text: text.into(),
            }],
        });
    }

    fn hover(&mut self, uri: &Uri, pos: Position) -> Option<String> {
        let h = self.request::<HoverRequest>(HoverParams {
            text_document_position_params: at(uri, pos),
            work_done_progress_params: Default::default(),
        })?;
        match h.contents {
            HoverContents::Markup(m) => Some(m.value),
            other => panic!("hover as {other:?}"),
        }
    }

    fn completion(&mut self, uri: &Uri, pos: Position) -> Vec<String> {
        let r = self.request::<Completion>(CompletionParams {
            text_document_position: at(uri, pos),
            work_done_progress_params: Default::default(),
            partial_result_params: Default::default(),
            context: None,
        });
        match r {
            Some(CompletionResponse::Array(items)) => items.into_iter().map(|i| i.label).collect(),
            Some(CompletionResponse::List(l)) => l.items.into_iter().map(|i| i.label).collect(),
            None => Vec::new(),
        }
    }

    fn definition(&mut self, uri: &Uri, pos: Position) -> Option<Range> {
        match self.request::<GotoDefinition>(GotoDefinitionParams {
            text_document_position_params: at(uri, pos),
            work_done_progress_params: Default::default(),
            partial_result_params: Default::default(),
        })? {
            GotoDefinitionResponse::Scalar(l) => {
                assert_eq!(l.uri, *uri);
                Some(l.range)
            }
            other => panic!("definition as {other:?}"),
        }
    }

    fn initialize(&mut self) {
        let r = self.request::<Initialize>(InitializeParams::default());
        let caps = serde_json::to_value(&r.capabilities).expect("json");
        assert_eq!(caps["textDocumentSync"], 1, "full sync: {caps}");
        assert_eq!(caps["hoverProvider"], true);
        assert_eq!(caps["definitionProvider"], true);
        let triggers = caps["completionProvider"]["triggerCharacters"].to_string();
        assert!(
            triggers.contains('>') && triggers.contains('('),
            "{triggers}"
        );
        self.notify::<Initialized>(lsp_types::InitializedParams {});
    }

    /// The exit status, within the timeout.
    fn wait(&mut self) -> ExitStatus {
        drop(self.stdin.take());
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s;
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn at(uri: &Uri, position: Position) -> TextDocumentPositionParams {
    TextDocumentPositionParams {
        text_document: TextDocumentIdentifier::new(uri.clone()),
        position,
    }
}

/// `file://` and the path, percent-encoded but for unreserved bytes and `/`.
fn file_uri(p: &Path) -> Uri {
    let mut s = String::from("file://");
    for b in p.to_str().expect("UTF-8 temp path").bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s.parse().expect("a URI")
}

/// The position of byte `offset` of `text`: a line count and the UTF-16
/// length of the line up to it, counted here independently of the server.
fn pos_of(text: &str, offset: usize) -> Position {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[..offset].matches('\n').count() as u32;
    Position::new(line, text[line_start..offset].encode_utf16().count() as u32)
}

/// The position inside the `n`th occurrence (from 0) of `needle`, one
/// character in.
fn inside(text: &str, needle: &str, n: usize) -> Position {
    let offset = text
        .match_indices(needle)
        .nth(n)
        .unwrap_or_else(|| panic!("`{needle}` #{n} not in the text"))
        .0;
    pos_of(text, offset + 1)
}

/// The range of the first occurrence of `needle` after byte `from`.
fn range_of(text: &str, needle: &str, from: usize) -> Range {
    let start = from + text[from..].find(needle).expect("needle");
    Range::new(pos_of(text, start), pos_of(text, start + needle.len()))
}

#[test]
fn lsp_diagnostics_hover_completion_definition_over_stdio() {
    let ws = common::tiny_workspace(16);
    let dir = ws.path();
    let good = common::tiny_pipeline("out", "");
    let bad = good.replace("CosineSimilarityLoss(", "CosineSimilarityLos(");
    let uri = file_uri(&dir.join("p.stp"));
    let mut c = Client::start(dir);
    c.initialize();

    // An unknown loss: one error, at the name.
    c.open(&uri, &bad);
    let d = c.diagnostics(&uri, 1);
    let errors: Vec<_> = d
        .diagnostics
        .iter()
        .filter(|d| d.severity == Some(DiagnosticSeverity::ERROR))
        .collect();
    assert_eq!(errors.len(), 1, "{:?}", d.diagnostics);
    assert_eq!(errors[0].range, range_of(&bad, "CosineSimilarityLos", 0));
    assert_eq!(
        errors[0].code,
        Some(NumberOrString::String("unknown-name".into()))
    );
    assert!(errors[0]
        .message
        .contains("did you mean `CosineSimilarityLoss`"));

    // Fixed: an empty list (relative paths resolve from the document's
    // directory: the tiny model and data are found).
    c.change(&uri, 2, &good);
    let d = c.diagnostics(&uri, 2);
    assert!(d.diagnostics.is_empty(), "{:?}", d.diagnostics);

    // Hover: a component, an objective option, an optimizer argument, a
    // train setting, a binding.
    let loss = registry::lookup(Family::Loss, "CosineSimilarityLoss").unwrap();
    let h = c
        .hover(&uri, inside(&good, "CosineSimilarityLoss", 0))
        .unwrap();
    assert!(h.contains(loss.doc), "{h}");
    let bs = registry::objective_options().arg("batch_size").unwrap();
    let h = c.hover(&uri, inside(&good, "batch_size", 0)).unwrap();
    assert!(h.contains(bs.doc), "{h}");
    let lr = registry::lookup(Family::Optimizer, "AdamW")
        .unwrap()
        .arg("lr")
        .unwrap();
    let h = c.hover(&uri, inside(&good, "lr:", 0)).unwrap();
    assert!(h.contains(lr.doc), "{h}");
    let h = c.hover(&uri, inside(&good, "objectives", 0)).unwrap();
    assert!(
        h.contains(registry::stage().arg("objectives").unwrap().doc),
        "{h}"
    );
    let h = c.hover(&uri, inside(&good, "pairs (", 0)).unwrap();
    assert!(h.contains("data pairs = tsv("), "{h}");

    // Go to definition: `m` of `train m` and `sim` of `[sim]`.
    let m_def = range_of(&good, "m", good.find("model ").unwrap() + 6);
    assert_eq!(c.definition(&uri, inside(&good, "m {", 0)), Some(m_def));
    let sim_def = range_of(&good, "sim", good.find("objective ").unwrap());
    assert_eq!(c.definition(&uri, inside(&good, "sim]", 0)), Some(sim_def));
    assert_eq!(c.definition(&uri, inside(&good, "batch_size", 0)), None);

    completions(&mut c, dir);
    utf16_columns(&mut c, dir, &bad);
    garbage(&mut c, dir);

    // Still answering after all that, then a clean shutdown.
    assert!(c
        .hover(&uri, inside(&good, "CosineSimilarityLoss", 0))
        .is_some());
    c.request::<Shutdown>(());
    c.notify::<Exit>(());
    assert_eq!(c.wait().code(), Some(0));
}

/// Module names after `->`, argument names inside a call, binding names
/// where a value is expected, on a document that does not parse.
fn completions(c: &mut Client, dir: &Path) {
    let uri = file_uri(&dir.join("edit.stp"));
    let text = "model m = Transformer(\"tiny\") -> Pooling(mean)\n\
                data pairs = tsv(\"data/pairs.tsv\", header: false)\n\
                model other = Transformer(\"tiny\", ) -> \n\
                objective sim = CosineSimilarityLoss(m) on pairs (batch_size: 8, )\n\
                evaluator dev = EmbeddingSimilarity(, pairs)\n";
    c.open(&uri, text);
    let chain = c.completion(&uri, pos_of(text, text.find("-> \n").unwrap() + 3));
    for m in ["Pooling", "Dense", "Normalize"] {
        assert!(chain.contains(&m.to_string()), "{chain:?}");
    }
    assert!(!chain.contains(&"Transformer".to_string()), "{chain:?}");

    let transformer = registry::lookup(Family::Module, "Transformer").unwrap();
    let args = c.completion(&uri, pos_of(text, text.find(", ) ->").unwrap() + 2));
    for a in &transformer.args[1..] {
        assert!(args.contains(&a.name.to_string()), "{args:?}");
    }
    // The path is given (positionally).
    assert!(
        !args.contains(&transformer.args[0].name.to_string()),
        "{args:?}"
    );

    let options = c.completion(&uri, pos_of(text, text.find("8, )").unwrap() + 3));
    assert!(options.contains(&"shuffle".to_string()), "{options:?}");
    assert!(!options.contains(&"batch_size".to_string()), "{options:?}");

    let values = c.completion(&uri, pos_of(text, text.find("(, pairs").unwrap() + 1));
    assert!(values.contains(&"m".to_string()), "{values:?}");
    assert!(values.contains(&"other".to_string()), "{values:?}");
    assert!(!values.contains(&"pairs".to_string()), "{values:?}");
    let data = c.completion(&uri, pos_of(text, text.find("on pairs").unwrap() + 3));
    assert!(data.contains(&"pairs".to_string()), "{data:?}");
    // It does not parse: the diagnostics say so, and nothing failed.
    let d = c.diagnostics(&uri, 1);
    assert!(!d.diagnostics.is_empty());
}

/// Non-ASCII text before an error on its line: the column counts UTF-16
/// code units (`😀` is two, `é` and `日` one each), not bytes or chars.
fn utf16_columns(c: &mut Client, dir: &Path, bad: &str) {
    let uri = file_uri(&dir.join("unicode.stp"));
    let text = bad.replace(
        "objective sim",
        "let note = \"naïve 😀 日本\" objective sim",
    );
    c.open(&uri, &text);
    let d = c.diagnostics(&uri, 1);
    let err = d
        .diagnostics
        .iter()
        .find(|d| d.severity == Some(DiagnosticSeverity::ERROR))
        .expect("the error");
    let expected = range_of(&text, "CosineSimilarityLos", 0);
    assert_eq!(err.range, expected);
    let line = text.lines().find(|l| l.contains("Los(")).unwrap();
    let prefix = &line[..line.find("Cosine").unwrap()];
    assert_eq!(
        expected.start.character as usize,
        prefix.encode_utf16().count()
    );
    assert_ne!(prefix.len(), prefix.encode_utf16().count());
    assert_ne!(prefix.chars().count(), prefix.encode_utf16().count());
    // A position after the emoji names the right word.
    let m = pos_of(&text, text.find("Los(m)").unwrap() + 4);
    let h = c.hover(&uri, m).expect("a hover");
    assert!(h.contains("model m = Transformer"), "{h}");
}

/// Random characters, an unterminated string, unbalanced brackets: every
/// request answers and every change is checked, nothing kills the server.
fn garbage(c: &mut Client, dir: &Path) {
    let uri = file_uri(&dir.join("garbage.stp"));
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pieces = [
        "model", "data", "let", "train", "(", ")", "{", "}", "[", "]", "->", ":", ",", "\"", "${",
        "\n", " ", "#", "\\", ".", "=", "é", "😀", "\u{0}", "\r", "Pooling", "m", "1e",
    ];
    let mut texts = vec![
        "data d = tsv(\"unterminated\nmodel m = Transformer(\"x\" -> (((".to_string(),
        "\u{feff}train { objectives: [".to_string(),
    ];
    for _ in 0..6 {
        let mut t = String::new();
        for _ in 0..400 {
            let r = next();
            match r % 4 {
                0 => t.push(char::from_u32((r >> 8) as u32 % 0x11_0000).unwrap_or('x')),
                _ => t.push_str(pieces[(r >> 8) as usize % pieces.len()]),
            }
        }
        texts.push(t);
    }
    c.open(&uri, &texts[0]);
    c.diagnostics(&uri, 1);
    for (v, t) in texts.iter().enumerate().skip(1) {
        let v = v as i32 + 1;
        c.change(&uri, v, t);
        let lines = t.split('\n').count() as u32;
        for i in 0..12u32 {
            let pos = Position::new(i % (lines + 1), (i * 7) % 40);
            c.hover(&uri, pos);
            c.completion(&uri, pos);
            c.definition(&uri, pos);
        }
        c.diagnostics(&uri, v);
    }
}

#[test]
fn exit_without_shutdown_is_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Client::start(dir.path());
    c.initialize();
    c.notify::<Exit>(());
    assert_eq!(c.wait().code(), Some(1));
}
