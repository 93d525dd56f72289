// The stpipe extension: starts `stpipe lsp` (stdio) for .stp files.
// Plain JavaScript, no build step. Highlighting comes from the grammar in
// syntaxes/ and works without the server.
'use strict';

const vscode = require('vscode');
const { LanguageClient } = require('vscode-languageclient/node');

let client;

function serverOptions() {
  const command = vscode.workspace.getConfiguration('stpipe').get('path', 'stpipe') || 'stpipe';
  // No `transport` key: for an executable, `transport: stdio` would make the
  // client append `--stdio` to the arguments. Without it the client still
  // talks to the process over stdin/stdout.
  return { command, args: ['lsp'] };
}

async function start() {
  const options = serverOptions();
  client = new LanguageClient('stpipe', 'stpipe language server', options, {
    documentSelector: [{ scheme: 'file', language: 'stp' }],
  });
  try {
    await client.start();
  } catch (err) {
    const message = err && err.message ? err.message : String(err);
    vscode.window.showErrorMessage(
      `stpipe: could not start \`${options.command} lsp\` (${message}). ` +
        'Set "stpipe.path" to the stpipe executable; highlighting works without it.'
    );
  }
}

async function stop() {
  const running = client;
  client = undefined;
  if (running) {
    try {
      await running.stop();
    } catch (_) {
      // a server that never started cannot be stopped; nothing to do
    }
  }
}

async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand('stpipe.restartServer', async () => {
      await stop();
      await start();
    }),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (event.affectsConfiguration('stpipe.path')) {
        await stop();
        await start();
      }
    })
  );
  await start();
}

function deactivate() {
  return stop();
}

module.exports = { activate, deactivate };
