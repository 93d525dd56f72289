//! `stpipe lsp`: a language server for `.stp` files, over stdio.
//!
//! Synchronous on purpose (`lsp-server`'s channels, no async runtime):
//! one client, one thread of work, and a small build. What it offers:
//!
//! * diagnostics: the checker's, on open and on every change
//!   ([`diagnostics`]); an empty list on close;
//! * hover: the registry's description of a component, argument or
//!   setting, or what a binding is bound to ([`hover`]);
//! * completion: component names, argument and setting names, binding
//!   names, choice words and metrics, by place ([`completion`]);
//! * go to definition of a binding ([`definition`]).
//!
//! Hover, completion and definition read tokens, not the AST ([`scan`],
//! [`slot`]),
//! so they keep working while the file does not parse. A handler that
//! panics answers an error (or, for the checker, an error diagnostic) and
//! the server carries on: no text can stop it. Nothing but protocol
//! messages goes to stdout; the log goes to stderr.

mod completion;
mod definition;
mod diagnostics;
mod hover;
mod scan;
mod slot;
mod text;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument, Notification as _,
    PublishDiagnostics,
};
use lsp_types::request::{Completion, GotoDefinition, HoverRequest, Request as _, Shutdown};
use lsp_types::{
    CompletionOptions, CompletionParams, DidChangeTextDocumentParams, DidCloseTextDocumentParams,
    DidOpenTextDocumentParams, GotoDefinitionParams, HoverParams, HoverProviderCapability, OneOf,
    PositionEncodingKind, PublishDiagnosticsParams, ServerCapabilities,
    TextDocumentContentChangeEvent, TextDocumentSyncCapability, TextDocumentSyncKind, Uri,
};
use serde_json::Value;

use crate::check::Options;
use text::LineMap;

/// Characters after which editors ask for completions unprompted: `->`
/// (a module), `(` and `,` (arguments), `:` (a value), `.` (a metric),
/// `[` (a list), `{` (a train block's settings, `${` interpolation).
const TRIGGERS: [&str; 7] = [">", "(", ",", ":", ".", "[", "{"];

/// Serve over stdin and stdout until `exit` or the end of input; whether
/// the client shut the server down properly (`shutdown`, then `exit`).
pub fn run_stdio(opts: &Options) -> Result<bool, String> {
    let (conn, io) = Connection::stdio();
    let outcome = serve(&conn, opts);
    // The writer thread ends once every sender is gone and every message
    // is out; the reader after `exit` or at the end of input.
    drop(conn);
    io.join().map_err(|e| format!("connection: {e}"))?;
    outcome
}

/// The server's capabilities: full-text sync, hover, completion,
/// definition, positions in UTF-16 (the protocol's default).
pub fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        position_encoding: Some(PositionEncodingKind::UTF16),
        text_document_sync: Some(TextDocumentSyncCapability::Kind(TextDocumentSyncKind::FULL)),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(TRIGGERS.iter().map(|t| t.to_string()).collect()),
            ..CompletionOptions::default()
        }),
        definition_provider: Some(OneOf::Left(true)),
        ..ServerCapabilities::default()
    }
}

/// Serve one client on `conn`: the initialize handshake, then messages
/// until `exit` (or a closed connection, which is not a clean end).
pub fn serve(conn: &Connection, opts: &Options) -> Result<bool, String> {
    let (id, _params) = conn
        .initialize_start()
        .map_err(|e| format!("initialize: {e}"))?;
    let result = serde_json::json!({
        "capabilities": capabilities(),
        "serverInfo": { "name": "stpipe", "version": env!("CARGO_PKG_VERSION") },
    });
    let mut server = Server {
        conn,
        opts,
        docs: HashMap::new(),
        dirty: Vec::new(),
        shut_down: false,
    };
    server.send(Response::new_ok(id, result).into());
    while let Ok(msg) = conn.receiver.recv() {
        if let Some(clean) = server.handle(msg) {
            return Ok(clean);
        }
        // Messages already waiting first: a burst of edits is checked once.
        while let Ok(msg) = conn.receiver.try_recv() {
            if let Some(clean) = server.handle(msg) {
                return Ok(clean);
            }
        }
        server.publish_dirty();
    }
    Ok(false)
}

/// An open document.
struct Document {
    text: String,
    version: i32,
    lines: LineMap,
}

struct Server<'a> {
    conn: &'a Connection,
    opts: &'a Options,
    docs: HashMap<Uri, Document>,
    /// Documents changed since their diagnostics were last published.
    dirty: Vec<Uri>,
    shut_down: bool,
}

/// A failed request: the error code and message of the response.
type Failure = (ErrorCode, String);

impl Server<'_> {
    fn send(&self, msg: Message) {
        if self.conn.sender.send(msg).is_err() {
            eprintln!("stpipe lsp: the connection is closed");
        }
    }

    /// One message; `Some(clean)` when it was `exit`.
    fn handle(&mut self, msg: Message) -> Option<bool> {
        match msg {
            Message::Request(req) => self.request(req),
            Message::Notification(n) if n.method == "exit" => return Some(self.shut_down),
            Message::Notification(n) => {
                let method = n.method.clone();
                if catch_unwind(AssertUnwindSafe(|| self.notification(n))).is_err() {
                    eprintln!("stpipe lsp: internal error handling `{method}`");
                }
            }
            Message::Response(_) => {}
        }
        None
    }

    fn request(&mut self, req: Request) {
        let id = req.id.clone();
        let resp = if self.shut_down {
            Response::new_err(
                id,
                ErrorCode::InvalidRequest as i32,
                "the server is shut down".to_string(),
            )
        } else {
            match catch_unwind(AssertUnwindSafe(|| self.answer(req))) {
                Ok(Ok(value)) => Response::new_ok(id, value),
                Ok(Err((code, message))) => Response::new_err(id, code as i32, message),
                Err(_) => Response::new_err(
                    id,
                    ErrorCode::InternalError as i32,
                    "internal error (see the server's log)".to_string(),
                ),
            }
        };
        self.send(resp.into());
    }

    fn answer(&mut self, req: Request) -> Result<Value, Failure> {
        match req.method.as_str() {
            Shutdown::METHOD => {
                self.shut_down = true;
                Ok(Value::Null)
            }
            HoverRequest::METHOD => {
                let p: HoverParams = params(req)?;
                let at = p.text_document_position_params;
                let found = self
                    .docs
                    .get(&at.text_document.uri)
                    .and_then(|d| hover::hover(&d.text, &d.lines, at.position));
                json(found)
            }
            Completion::METHOD => {
                let p: CompletionParams = params(req)?;
                let at = p.text_document_position;
                let found = self
                    .docs
                    .get(&at.text_document.uri)
                    .map(|d| completion::complete(&d.text, &d.lines, at.position));
                json(found)
            }
            GotoDefinition::METHOD => {
                let p: GotoDefinitionParams = params(req)?;
                let at = p.text_document_position_params;
                let uri = &at.text_document.uri;
                let found = self
                    .docs
                    .get(uri)
                    .and_then(|d| definition::definition(uri, &d.text, &d.lines, at.position));
                json(found)
            }
            m => Err((ErrorCode::MethodNotFound, format!("unknown request `{m}`"))),
        }
    }

    fn notification(&mut self, n: Notification) {
        match n.method.as_str() {
            DidOpenTextDocument::METHOD => {
                let Some(p) = extract::<DidOpenTextDocumentParams>(n) else {
                    return;
                };
                let doc = p.text_document;
                self.docs.insert(
                    doc.uri.clone(),
                    Document {
                        lines: LineMap::new(&doc.text),
                        text: doc.text,
                        version: doc.version,
                    },
                );
                self.mark_dirty(doc.uri);
            }
            DidChangeTextDocument::METHOD => {
                let Some(p) = extract::<DidChangeTextDocumentParams>(n) else {
                    return;
                };
                let uri = p.text_document.uri;
                let Some(doc) = self.docs.get_mut(&uri) else {
                    return;
                };
                for change in p.content_changes {
                    apply_change(doc, change);
                }
                doc.version = p.text_document.version;
                self.mark_dirty(uri);
            }
            DidCloseTextDocument::METHOD => {
                let Some(p) = extract::<DidCloseTextDocumentParams>(n) else {
                    return;
                };
                let uri = p.text_document.uri;
                self.docs.remove(&uri);
                self.dirty.retain(|u| *u != uri);
                self.publish(uri, Vec::new(), None);
            }
            // `initialized`, `didSave`, `$/cancelRequest`, ...: nothing to do.
            _ => {}
        }
    }

    fn mark_dirty(&mut self, uri: Uri) {
        if !self.dirty.contains(&uri) {
            self.dirty.push(uri);
        }
    }

    /// Check every changed document and publish its diagnostics.
    fn publish_dirty(&mut self) {
        for uri in std::mem::take(&mut self.dirty) {
            let Some(doc) = self.docs.get(&uri) else {
                continue;
            };
            let diags = diagnostics::diagnostics(&uri, &doc.text, &doc.lines, self.opts);
            let version = Some(doc.version);
            self.publish(uri, diags, version);
        }
    }

    fn publish(&self, uri: Uri, diagnostics: Vec<lsp_types::Diagnostic>, version: Option<i32>) {
        let params = PublishDiagnosticsParams {
            uri,
            diagnostics,
            version,
        };
        self.send(Notification::new(PublishDiagnostics::METHOD.to_string(), params).into());
    }
}

/// One change of a document: the whole text, or (from a client that
/// sends ranges although full sync was asked for) a range replaced.
fn apply_change(doc: &mut Document, change: TextDocumentContentChangeEvent) {
    match change.range {
        None => doc.text = change.text,
        Some(r) => {
            let a = doc.lines.offset(&doc.text, r.start);
            let b = doc.lines.offset(&doc.text, r.end);
            doc.text.replace_range(a.min(b)..a.max(b), &change.text);
        }
    }
    doc.lines = LineMap::new(&doc.text);
}

fn params<P: serde::de::DeserializeOwned>(req: Request) -> Result<P, Failure> {
    serde_json::from_value(req.params)
        .map_err(|e| (ErrorCode::InvalidParams, format!("`{}`: {e}", req.method)))
}

fn json<T: serde::Serialize>(v: T) -> Result<Value, Failure> {
    serde_json::to_value(v).map_err(|e| (ErrorCode::InternalError, e.to_string()))
}

/// A notification's parameters; a malformed one is logged and ignored.
fn extract<P: serde::de::DeserializeOwned>(n: Notification) -> Option<P> {
    match serde_json::from_value(n.params) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("stpipe lsp: ignoring a malformed `{}`: {e}", n.method);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lsp_types::{Position, Range};

    #[test]
    fn ranged_changes_apply_in_utf16_units() {
        let text = "let é = \"😀x\"".to_string();
        let mut doc = Document {
            lines: LineMap::new(&text),
            text,
            version: 1,
        };
        // Replace `x` (after the emoji's two units) by `y`.
        let change = TextDocumentContentChangeEvent {
            range: Some(Range::new(Position::new(0, 11), Position::new(0, 12))),
            range_length: None,
            text: "y".to_string(),
        };
        apply_change(&mut doc, change);
        assert_eq!(doc.text, "let é = \"😀y\"");
    }
}
