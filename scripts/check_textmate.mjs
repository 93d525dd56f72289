// Checks the TextMate grammar of .stp files against the pest grammar.
//
//   node scripts/check_textmate.mjs --deps DIR [--root REPO] [--verbose]
//
// DIR holds node_modules/vscode-textmate and node_modules/vscode-oniguruma
// (scripts/check_textmate.sh installs them outside the repository). The
// grammar is tokenized the way VS Code does it; the expected scopes come from
// two oracles written from grammar/stp.pest and src/syntax/interp.rs:
//
// * a lexical one, for every file: comments (`#` to the end of the line,
//   outside strings), strings (escapes, no newline unless escaped), `${...}`
//   interpolation as `interpolate` reads it, reserved words at statement
//   starts, numbers;
// * a parser, a port of stp.pest (ordered choice, implicit whitespace and
//   comments, atomic rules), for every file that parses: statement and
//   contextual keywords (`on`, `to`, `as`, `best by`, `limit`, `every`,
//   `steps`, `keep`, `evaluate`, `checkpoint`), binding names, component
//   calls, argument/setting/column/map keys, operators, metric references,
//   numbers, percentages, booleans.
//
// Exit status 0 when every check passes, 1 otherwise.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const argv = process.argv.slice(2);
const opt = name => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
const VERBOSE = argv.includes('--verbose');
const ROOT = path.resolve(opt('--root') ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..'));
const DEPS = opt('--deps');
if (!DEPS) { console.error('usage: check_textmate.mjs --deps DIR [--root REPO] [--verbose]'); process.exit(2); }
const requireDeps = createRequire(path.join(path.resolve(DEPS), 'node_modules', 'noop.js'));
const vsctm = requireDeps('vscode-textmate');
const onig = requireDeps('vscode-oniguruma');

const EXT = path.join(ROOT, 'editors', 'vscode');
const GRAMMAR = path.join(EXT, 'syntaxes', 'stp.tmLanguage.json');
const rel = p => path.relative(ROOT, p);

let failures = 0;
const failureLines = [];
let regexCount = 0;
const files = [];
const stats = { files: 0, parsed: 0, lexicalOnly: [], lines: 0, tokens: 0, checks: 0,
  comments: 0, strings: 0, interpolations: 0, keywords: 0, numbers: 0, marks: {} };
function fail(msg) {
  failures++;
  if (failureLines.length < 200) failureLines.push(msg);
}

// ---------------------------------------------------------------- JSON files
function readJson(file) {
  try { return JSON.parse(fs.readFileSync(file, 'utf8')); }
  catch (e) { fail(`${rel(file)}: not valid JSON: ${e.message}`); return null; }
}
const grammarJson = readJson(GRAMMAR);
const pkg = readJson(path.join(EXT, 'package.json'));
const langConf = readJson(path.join(EXT, 'language-configuration.json'));
if (!grammarJson) { report(); }

// --------------------------------------------------------- oniguruma + grammar
const wasm = fs.readFileSync(path.join(path.dirname(requireDeps.resolve('vscode-oniguruma')), 'onig.wasm'));
await onig.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
const onigLib = Promise.resolve({
  createOnigScanner: patterns => new onig.OnigScanner(patterns),
  createOnigString: s => new onig.OnigString(s),
});

// Every regex compiles on its own, every include names a rule that exists.
(function walk(node, where) {
  if (Array.isArray(node)) { node.forEach((n, i) => walk(n, `${where}[${i}]`)); return; }
  if (!node || typeof node !== 'object') return;
  for (const key of ['match', 'begin', 'end', 'while']) {
    if (typeof node[key] === 'string') {
      regexCount++;
      try { new onig.OnigScanner([node[key]]).dispose?.(); }
      catch (e) { fail(`grammar ${where}.${key}: regex does not compile: ${e.message ?? e}`); }
    }
  }
  if (typeof node.include === 'string' && node.include.startsWith('#')
      && !(grammarJson.repository && node.include.slice(1) in grammarJson.repository)) {
    fail(`grammar ${where}: include ${node.include} names no repository rule`);
  }
  for (const [k, v] of Object.entries(node)) if (typeof v === 'object') walk(v, `${where}.${k}`);
})(grammarJson, 'grammar');

const registry = new vsctm.Registry({
  onigLib,
  loadGrammar: async scope => scope === 'source.stp'
    ? vsctm.parseRawGrammar(fs.readFileSync(GRAMMAR, 'utf8'), GRAMMAR) : null,
});
const grammar = await registry.loadGrammar('source.stp');
if (!grammar) { fail('the grammar did not load (scopeName source.stp)'); report(); }

// ------------------------------------------------------------------ tokenize
// Returns per-character token ids and the token list, offsets into `text`.
function tokenize(text, label) {
  const tokens = [];
  const charTok = new Int32Array(text.length).fill(-1);
  let stack = vsctm.INITIAL;
  let lineStart = 0;
  const lines = text.split('\n');
  lines.forEach((line, ln) => {
    let r;
    try { r = grammar.tokenizeLine(line, stack, 2000); }
    catch (e) { fail(`${label}:${ln + 1}: tokenizing threw: ${e.message ?? e}`); lineStart += line.length + 1; return; }
    if (r.stoppedEarly) fail(`${label}:${ln + 1}: tokenizing stopped early (time limit)`);
    let covered = 0;
    for (const t of r.tokens) {
      const a = Math.min(t.startIndex, line.length), b = Math.min(t.endIndex, line.length);
      if (a !== covered && a < line.length) fail(`${label}:${ln + 1}: tokens leave a gap at column ${covered + 1}`);
      if (b <= a) continue;
      const id = tokens.length;
      tokens.push({ a: lineStart + a, b: lineStart + b, scopes: t.scopes, line: ln + 1 });
      for (let i = a; i < b; i++) charTok[lineStart + i] = id;
      covered = b;
    }
    if (covered < line.length) fail(`${label}:${ln + 1}: tokens stop at column ${covered + 1} of ${line.length}`);
    stack = r.ruleStack;
    lineStart += line.length + 1;
  });
  return { tokens, charTok };
}

// ------------------------------------------------------------------ checking
const has = name => scopes => scopes.includes(name);
const hasPrefix = prefix => scopes => scopes.some(s => s.startsWith(prefix));
const not = pred => scopes => !pred(scopes);
const all = (...preds) => scopes => preds.every(p => p(scopes));
const NO_COMMENT = not(hasPrefix('comment.'));
const NO_STRING = not(hasPrefix('string.'));

function makeChecker(text, label, tk) {
  const lineOf = off => text.slice(0, off).split('\n').length;
  const colOf = off => off - text.lastIndexOf('\n', off - 1);
  const where = off => `${label}:${lineOf(off)}:${colOf(off)}`;
  let count = 0;
  // Every token over [a, b) satisfies `pred`; with `single`, one token covers all of it.
  function expect(a, b, pred, what, single = true) {
    count++;
    const ids = [];
    for (let i = a; i < b; i++) if (text[i] !== '\n') ids.push(tk.charTok[i]);
    const uniq = [...new Set(ids)];
    const snippet = JSON.stringify(text.slice(a, b));
    if (uniq.some(id => id < 0)) { fail(`${where(a)}: ${what} ${snippet}: not tokenized`); return; }
    if (single && uniq.length > 1) {
      fail(`${where(a)}: ${what} ${snippet}: split into ${uniq.length} tokens (${uniq.map(id => JSON.stringify(text.slice(tk.tokens[id].a, tk.tokens[id].b))).join(' ')})`);
      return;
    }
    for (const id of uniq) {
      if (!pred(tk.tokens[id].scopes)) {
        fail(`${where(tk.tokens[id].a)}: ${what} ${snippet}: token ${JSON.stringify(text.slice(tk.tokens[id].a, tk.tokens[id].b))} has scopes ${tk.tokens[id].scopes.join(' ')}`);
        return;
      }
    }
  }
  return { expect, get count() { return count; } };
}

// --------------------------------------------------------- lexical oracle
const isIdStart = c => c !== undefined && /[A-Za-z_]/.test(c);
const isIdChar = c => c !== undefined && /[A-Za-z0-9_]/.test(c);
const STATEMENTS = ['let', 'model', 'data', 'objective', 'evaluator', 'train', 'save', 'expect'];
const DECLARATIONS = ['let', 'model', 'data', 'objective', 'evaluator'];
const stmtScope = w => `keyword.${DECLARATIONS.includes(w) ? 'declaration' : 'control'}.${w}.stp`;
const NUMBER_RE = /-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const numberScope = t => /[.eE]/.test(t) ? 'constant.numeric.float.stp' : 'constant.numeric.integer.stp';

function lexicalChecks(text, ck, stats) {
  const n = text.length;
  let p = 0;
  while (p < n) {
    const c = text[p];
    if (c === '#') {
      let q = p; while (q < n && text[q] !== '\n') q++;
      ck.expect(p, p + 1, has('punctuation.definition.comment.stp'), 'comment start');
      ck.expect(p, q, all(has('comment.line.number-sign.stp'), NO_STRING), 'comment', false);
      stats.comments++;
      p = q;
    } else if (c === '"') {
      let q = p + 1, closed = false;
      for (;;) {
        if (q >= n || text[q] === '\n') break;
        if (text[q] === '"') { closed = true; break; }
        q += text[q] === '\\' && q + 1 < n ? 2 : 1;
      }
      const end = closed ? q + 1 : q;
      ck.expect(p, end, all(has('string.quoted.double.stp'), NO_COMMENT), 'string', false);
      ck.expect(p, p + 1, has('punctuation.definition.string.begin.stp'), 'string start');
      if (closed) {
        ck.expect(q, q + 1, has('punctuation.definition.string.end.stp'), 'string end');
        if (end < n && text[end] !== '\n') ck.expect(end, end + 1, NO_STRING, 'text after a string');
      }
      stats.strings++;
      stringContentChecks(text, p + 1, q, ck, stats);
      p = end;
    } else if (isIdStart(c)) {
      let q = p; while (isIdChar(text[q])) q++;
      const w = text.slice(p, q);
      let b0 = p - 1; while (b0 >= 0 && /\s/.test(text[b0])) b0--;
      const prev = text[b0]; // `ev . data`: a metric name, not a keyword
      const colonAfter = /^\s*:/.test(text.slice(q, q + 64));
      if (STATEMENTS.includes(w) && prev !== '.' && !colonAfter) {
        ck.expect(p, q, has(stmtScope(w)), `statement keyword \`${w}\``);
        stats.keywords++;
      } else if ((w === 'true' || w === 'false') && prev !== '.' && !colonAfter) {
        ck.expect(p, q, has(`constant.language.boolean.${w}.stp`), 'boolean');
      }
      p = q;
    } else if (/[0-9]/.test(c)) {
      NUMBER_RE.lastIndex = p;
      const m = NUMBER_RE.exec(text);
      let q = p + m[0].length;
      const pct = text[q] === '%';
      if (pct) q++;
      ck.expect(p, q, pct ? has('constant.numeric.percentage.stp') : hasPrefix('constant.numeric.'), pct ? 'percentage' : 'number');
      stats.numbers++;
      p = q;
    } else {
      p++;
    }
  }
}

// Escapes, and `${...}` as src/syntax/parse.rs `unescape` then
// src/syntax/interp.rs `interpolate` read the string.
function stringContentChecks(text, a, b, ck, stats) {
  const units = []; // unescaped characters, each with its raw range
  for (let i = a; i < b;) {
    if (text[i] === '\\' && i + 1 < b + 1 && i + 1 < text.length) {
      const e = text[i + 1];
      ck.expect(i, i + 2, has('constant.character.escape.stp'), 'escape', false);
      if (e === '$') { units.push({ ch: '\\', a: i, b: i + 1 }, { ch: '$', a: i + 1, b: i + 2 }); }
      else units.push({ ch: e === 'n' ? '\n' : e === 't' ? '\t' : e, a: i, b: i + 2 });
      i += 2;
    } else { units.push({ ch: text[i], a: i, b: i + 1 }); i++; }
  }
  const raw = (from, to) => [units[from].a, units[to - 1].b];
  (function scan(from, to) {
    let k = from;
    while (k < to) {
      const ch = units[k].ch;
      if (ch === '\\') {
        if (k + 1 < to && units[k + 1].ch === '$') {
          const [x, y] = raw(k, k + 2);
          ck.expect(x, y, all(has('constant.character.escape.stp'), not(hasPrefix('meta.interpolation'))), 'escaped dollar', false);
          k += 2;
        } else k++;
        continue;
      }
      if (ch === '$' && k + 1 < to && units[k + 1].ch === '{') {
        const [x, y] = raw(k, k + 2);
        ck.expect(x, y, all(has('meta.interpolation.stp'), has('punctuation.section.embedded.begin.stp')), 'interpolation start');
        stats.interpolations++;
        let level = 1, j = k + 2, end = -1;
        while (j < to) {
          if (units[j].ch === '$' && j + 1 < to && units[j + 1].ch === '{') { level++; j += 2; continue; }
          if (units[j].ch === '}' && --level === 0) { end = j; break; }
          j++;
        }
        if (end < 0) return; // unclosed: an error; only its start is checked
        let dash = -1;
        for (let d = k + 2; d + 1 < end; d++) if (units[d].ch === ':' && units[d + 1].ch === '-') { dash = d; break; }
        const nameEnd = dash >= 0 ? dash : end;
        const name = units.slice(k + 2, nameEnd).map(u => u.ch).join('');
        if (/^[A-Za-z0-9_]+$/.test(name)) {
          const [na, nb] = raw(k + 2, nameEnd);
          ck.expect(na, nb, all(has('variable.other.interpolation.stp'), has('string.quoted.double.stp')), 'interpolated name');
          const [ea, eb] = raw(end, end + 1);
          ck.expect(ea, eb, has('punctuation.section.embedded.end.stp'), 'interpolation end');
          if (dash >= 0) {
            const [da, db] = raw(dash, dash + 2);
            ck.expect(da, db, has('keyword.operator.default.stp'), 'interpolation default operator');
            scan(dash + 2, end);
          }
        } else if (name.length > 0) {
          const [na, nb] = raw(k + 2, k + 3);
          ck.expect(na, nb, hasPrefix('invalid.illegal.'), 'malformed interpolation name');
        }
        k = end + 1;
        continue;
      }
      k++;
    }
  })(0, units.length);
}

// ------------------------------------------------------------ parser oracle
// A port of grammar/stp.pest. Each rule takes a position and returns the end
// or -1; `mark` records what the highlighting must show, undone on backtrack.
function parseStp(s) {
  const n = s.length;
  const marks = [];
  const mark = (kind, a, b) => marks.push({ kind, a, b });
  const skip = p => {
    for (;;) {
      const c = s[p];
      if (c === ' ' || c === '\t' || c === '\r' || c === '\n') { p++; continue; }
      if (c === '#') { while (p < n && s[p] !== '\n') p++; continue; }
      return p;
    }
  };
  const attempt = (f, p) => { const m = marks.length; const q = f(p); if (q < 0) marks.length = m; return q; };
  const seq = (...fs) => p => {
    const m = marks.length;
    for (let i = 0; i < fs.length; i++) {
      if (i > 0) p = skip(p);
      p = fs[i](p);
      if (p < 0) { marks.length = m; return -1; }
    }
    return p;
  };
  const opt = f => p => { const q = attempt(f, p); return q < 0 ? p : q; };
  const rep = f => p => {
    let first = true;
    for (;;) {
      const q = attempt(f, first ? p : skip(p));
      if (q < 0) return p;
      p = q; first = false;
    }
  };
  const choice = (...fs) => p => { for (const f of fs) { const q = attempt(f, p); if (q >= 0) return q; } return -1; };
  const lit = (t, kind) => p => {
    if (!s.startsWith(t, p)) return -1;
    if (kind) mark(kind, p, p + t.length);
    return p + t.length;
  };
  const tag = (f, kind) => p => { const q = f(p); if (q >= 0) mark(kind, p, q); return q; };
  // sep-by-comma list with optional trailing comma: (x ~ ("," ~ x)* ~ ","?)?
  const commaList = (x, trailing = true) => opt(seq(x, rep(seq(lit(','), x)), ...(trailing ? [opt(lit(','))] : [])));

  // atomic rules
  const KEYWORDS = ['let', 'model', 'data', 'objective', 'evaluator', 'train', 'save', 'expect', 'true', 'false'];
  const keyword = p => {
    for (const k of KEYWORDS) if (s.startsWith(k, p)) return isIdChar(s[p + k.length]) ? -1 : p + k.length;
    return -1;
  };
  const key = p => { if (!isIdStart(s[p])) return -1; let q = p + 1; while (isIdChar(s[q])) q++; return q; };
  const ident = p => keyword(p) >= 0 ? -1 : key(p);
  const number = p => {
    let q = p;
    if (s[q] === '-') q++;
    const d0 = q; while (/[0-9]/.test(s[q] ?? '')) q++;
    if (q === d0) return -1;
    if (s[q] === '.' && /[0-9]/.test(s[q + 1] ?? '')) { q++; while (/[0-9]/.test(s[q] ?? '')) q++; }
    if (s[q] === 'e' || s[q] === 'E') {
      let r = q + 1; if (s[r] === '+' || s[r] === '-') r++;
      const e0 = r; while (/[0-9]/.test(s[r] ?? '')) r++;
      if (r > e0) q = r;
    }
    return q;
  };
  const percent = p => { const q = number(p); return q >= 0 && s[q] === '%' ? q + 1 : -1; };
  const boolean = p => {
    for (const w of ['true', 'false']) if (s.startsWith(w, p)) return isIdChar(s[p + w.length]) ? -1 : p + w.length;
    return -1;
  };
  const string = p => {
    if (s[p] !== '"') return -1;
    let q = p + 1;
    for (;;) {
      if (q >= n) return -1;
      const c = s[q];
      if (c === '"') return q + 1;
      if (c === '\\') { if (q + 1 >= n) return -1; q += 2; continue; }
      if (c === '\n') return -1;
      q++;
    }
  };

  // values
  let value; // defined below (recursive)
  const args = p => seq(lit('('), commaList(seq(opt(seq(tag(key, 'argkey'), lit(':'))), p2 => value(p2))), lit(')'))(p);
  const call = seq(tag(ident, 'component'), args);
  const list = p => seq(lit('['), commaList(p2 => value(p2)), lit(']'))(p);
  const mapEntry = p => seq(choice(tag(string, 'string'), tag(number, 'number'), tag(key, 'mapkey')), lit(':'), p2 => value(p2))(p);
  const map = seq(lit('{'), commaList(mapEntry), lit('}'));
  value = choice(tag(percent, 'percent'), tag(number, 'number'), tag(boolean, 'boolean'), tag(string, 'string'),
    list, map, call, tag(ident, 'ref'));

  // module = ident ~ args?  (a component name; in a model chain even without args)
  const chainModule = seq(tag(ident, 'component'), opt(args));
  const otherModule = p => {
    const a = ident(p);
    if (a < 0) return -1;
    const c = attempt(args, skip(a));
    mark(c >= 0 ? 'component' : 'ref', p, a);
    return c >= 0 ? c : a;
  };

  // column expressions
  let colExpr;
  const arithOp = p => '+-*/'.includes(s[p] ?? 'x') && p < n ? p + 1 : -1;
  const colArg = p => choice(colExpr, value)(p);
  const colCall = seq(tag(ident, 'colfn'), lit('('), commaList(colArg, false), lit(')'));
  const colTerm = choice(colCall, tag(number, 'number'), p => seq(lit('('), colExpr, lit(')'))(p));
  colExpr = seq(colTerm, rep(seq(tag(arithOp, 'arith'), colTerm)));

  const metricRef = seq(tag(ident, 'mobj'), lit('.', 'maccess'), tag(key, 'mkey'));
  const every = seq(lit('every', 'kw:every'), p => value(p), choice(lit('steps', 'kw:steps'), lit('step', 'kw:step')));
  const stageItem = seq(choice(
    seq(lit('evaluate', 'kw:evaluate'), lit(':'), p => value(p), opt(every)),
    seq(lit('checkpoint', 'kw:checkpoint'), lit(':'), every, opt(seq(lit(','), lit('keep', 'kw:keep'), p => value(p)))),
    seq(tag(key, 'setkey'), lit(':'), p => value(p)),
  ), opt(lit(',')));
  const column = seq(tag(key, 'colkey'), lit(':'), colExpr);
  const columns = seq(lit('{'), commaList(column), lit('}'));

  const statement = choice(
    seq(lit('let', 'kw:let'), tag(ident, 'bind'), lit('=', 'assign'), p => value(p)),
    seq(lit('model', 'kw:model'), tag(ident, 'bind'), lit('=', 'assign'), chainModule, rep(seq(lit('->', 'chain'), chainModule))),
    seq(lit('data', 'kw:data'), tag(ident, 'bind'), lit('=', 'assign'),
      otherModule, opt(columns), opt(seq(lit('limit', 'kw:limit'), p => value(p)))),
    seq(lit('objective', 'kw:objective'), tag(ident, 'bind'), lit('=', 'assign'), otherModule,
      lit('on', 'kw:on'), tag(ident, 'ref'), opt(args)),
    seq(lit('evaluator', 'kw:evaluator'), tag(ident, 'bind'), lit('=', 'assign'), otherModule),
    seq(lit('train', 'kw:train'), tag(ident, 'ref'), opt(seq(lit('as', 'kw:as'), tag(ident, 'stage'))),
      lit('{'), rep(stageItem), lit('}')),
    seq(lit('save', 'kw:save'), tag(ident, 'ref'), lit('to', 'kw:to'), p => value(p),
      opt(seq(lit('best', 'kw:best'), lit('by', 'kw:by'), metricRef))),
    seq(lit('expect', 'kw:expect'), metricRef,
      tag(choice(lit('>='), lit('<='), lit('>'), lit('<')), 'cmp'), p => value(p)),
  );
  const end = rep(statement)(skip(0));
  return skip(end) === n ? marks : null;
}

const KIND = {
  assign: has('keyword.operator.assignment.stp'),
  chain: has('keyword.operator.chain.stp'),
  cmp: has('keyword.operator.comparison.stp'),
  arith: has('keyword.operator.arithmetic.stp'),
  bind: hasPrefix('entity.name.variable.'),
  stage: has('entity.name.section.stage.stp'),
  component: has('support.function.component.stp'),
  colfn: has('support.function.column.stp'),
  argkey: has('variable.parameter.argument.stp'),
  setkey: has('entity.other.attribute-name.setting.stp'),
  colkey: has('entity.other.attribute-name.column.stp'),
  mapkey: has('entity.other.attribute-name.map-key.stp'),
  mobj: has('variable.other.object.evaluator.stp'),
  maccess: has('punctuation.accessor.stp'),
  mkey: has('variable.other.property.metric.stp'),
  percent: has('constant.numeric.percentage.stp'),
  ref: all(hasPrefix('variable.other.'), not(hasPrefix('keyword.'))),
  string: all(has('string.quoted.double.stp'), NO_COMMENT),
};
function parserChecks(text, marks, ck, stats) {
  for (const m of marks) {
    const t = text.slice(m.a, m.b);
    let pred, single = true;
    if (m.kind.startsWith('kw:')) {
      const w = m.kind.slice(3);
      pred = has(STATEMENTS.includes(w) ? stmtScope(w) : `keyword.other.${w}.stp`);
    } else if (m.kind === 'number') pred = has(numberScope(t));
    else if (m.kind === 'boolean') pred = has(`constant.language.boolean.${t}.stp`);
    else if (m.kind === 'string') { pred = KIND.string; single = false; }
    else pred = KIND[m.kind];
    if (!pred) throw new Error(`no expectation for ${m.kind}`);
    ck.expect(m.a, m.b, pred, m.kind.replace(/^kw:/, 'keyword '), single);
    stats.marks[m.kind] = (stats.marks[m.kind] ?? 0) + 1;
  }
}

// ------------------------------------------------------- synthetic cases
// Corners the example files do not reach. `valid` ones must parse.
// (Plain strings, not template literals: `${` must stay text.)
const SYNTHETIC = [
  { name: 'corners', valid: true, text: [
    '# a comment with "a string", ${NOT} and model m = x',
    'let root = "${STPIPE_DATA:-${HOME:-/tmp}/data}/x # not a comment \\" \\\\ \\n \\t \\$ \\${NO} \\\\${NO2} $ {}"',
    'let on = 1',
    'let every = 200',
    'let steps = on',
    'let lr = 2e-5',
    'let big = -1.5E+3',
    'let neg = -2',
    'let pct = 10%',
    'let frac = -0.5%',
    'let yes = true',
    'let multi = "first \\',
    'second"',
    'model m = Transformer("x", max_seq_length: 128, prompts: {query: "q: ", "document": "d: ", 1: "one"})',
    '        -> Pooling([cls, mean], include_prompt: false)',
    '        ->Normalize',
    'data d = tsv("${root}/d.tsv", header: false, quoting: none)',
    '  { s1: col(0), s2: col("b"), score: col(4)-1, x: col(1) - -1, y: (col(2) + 1) * -3 / 2.5e1,',
    '    label: map(col("g"), {"a": 0, "b": 1}), } limit 100',
    'data e = d limit every',
    'data z = zip(d, e)',
    'objective o = CosineSimilarityLoss(m)',
    '  on d',
    '  (batch_size: 16, sampler: no_duplicates)',
    'objective c = SoftmaxLoss(m, num_labels: 3) on d (data: d, model: m, true: false)',
    'evaluator ev = LabelAccuracy(m, d, objective: c)',
    'train m as first { objectives: [o], epochs: 1, evaluate_at_start: true, evaluate: [ev] every 100 step, checkpoint: every every steps, keep 2 }',
    'train m {',
    '  objectives: [o, c]   # a comment with "quotes" in a block',
    '  checkpoint: 5',
    '  evaluate: ev',
    '  optimizer: AdamW(lr: lr, betas: [0.9, 0.999], eps: 1e-6)',
    '  scheduler: WarmupLinear(warmup: 10%)',
    '}',
    'save m to "out" best by ev.accuracy',
    'save m to root',
    'expect ev.accuracy >= 0.5',
    'expect ev . data < 1',
    'train m{objectives:[o]}save m to"x#y"expect ev.a>0',
    ''].join('\n'),
    expect: [
      // [text to find, which occurrence, predicate for all its tokens, what, length, offset]
      ['# a comment with "a string"', 0, all(has('comment.line.number-sign.stp'), NO_STRING), 'string inside a comment'],
      ['# not a comment', 0, all(has('string.quoted.double.stp'), NO_COMMENT), '# inside a string'],
      ['"x#y"', 0, all(has('string.quoted.double.stp'), NO_COMMENT), '# inside a string'],
      ['$ {}', 0, all(has('string.quoted.double.stp'), not(hasPrefix('meta.interpolation'))), 'a lone $'],
      ['\\${NO}', 0, not(hasPrefix('meta.interpolation')), 'an escaped interpolation'],
      ['\\\\${NO2}', 0, not(hasPrefix('meta.interpolation')), 'a dollar after an escaped backslash'],
      ['2e-5', 0, has('constant.numeric.float.stp'), 'one float token'],
      ['-1.5E+3', 0, has('constant.numeric.float.stp'), 'one float token'],
      ['10%', 0, has('constant.numeric.percentage.stp'), 'one percentage token'],
      ['-0.5%', 0, has('constant.numeric.percentage.stp'), 'one percentage token'],
      ['col(4)-1', 0, has('keyword.operator.arithmetic.stp'), 'subtraction right after a term', 1, 6],
      ['- -1, y', 0, has('constant.numeric.integer.stp'), 'a negative number after an operator', 2, 2],
      ['second"', 0, has('string.quoted.double.stp'), 'a string continued after an escaped newline'],
      ['on d\n', 0, has('keyword.other.on.stp'), '`on` on its own line', 2],
      ['d\n  (batch', 0, has('variable.other.data.stp'), 'the data source before its options', 1],
      ['checkpoint: 5', 0, has('entity.other.attribute-name.setting.stp'), '`checkpoint:` without `every` is a setting', 10],
      ['evaluate_at_start', 0, has('entity.other.attribute-name.setting.stp'), 'a setting starting with `evaluate`'],
      ['every every', 0, has('variable.other.stp'), 'a let named `every` after `every`', 5, 6],
    ] },
  { name: 'recovery', valid: false, text: [
    'model m = Transformer("x"',
    'model n = load("y")',
    'let data = 1',
    'let s = "unterminated',
    'let t = "${not a name} ${} ${A:-${B}} ${A"',
    'expect e.x => 0.8',
    'train m { objectives: [o] epochs 1 }',
    'objective o = L(m on sts',
    'evaluator e = EmbeddingSimilarity(m, sts',
    'save m to "out" best dev.spearman',
    ''].join('\n'),
    expect: [
      ['model n', 0, has('keyword.declaration.model.stp'), 'a statement after an unclosed call', 5],
      ['n = load', 0, has('entity.name.variable.model.stp'), 'binding after an unclosed call', 1],
      ['load', 0, has('support.function.component.stp'), 'component after an unclosed call'],
      ['data = 1', 0, has('keyword.declaration.data.stp'), 'a reserved word cannot be a binding', 4],
      ['let t', 0, has('keyword.declaration.let.stp'), 'a statement after an unterminated string', 3],
      ['not a name', 0, has('invalid.illegal.interpolation-name.stp'), 'a malformed interpolation'],
      ['=>', 0, has('invalid.illegal.operator.stp'), 'not a comparison'],
      ['evaluator e', 0, has('keyword.declaration.evaluator.stp'), 'a statement after an unclosed call', 9],
      ['save m', 0, has('keyword.control.save.stp'), 'a statement after an unclosed call', 4],
    ] },
];

// ------------------------------------------------------------------ run
for (const dir of ['pipelines', path.join('tests', 'invalid')]) {
  const d = path.join(ROOT, dir);
  for (const f of fs.readdirSync(d).filter(f => f.endsWith('.stp')).sort()) files.push(path.join(d, f));
}
function checkText(text, label, { mustParse = false, extra = [] } = {}) {
  text = text.replace(/^\uFEFF/, '').replace(/\r\n/g, '\n'); // as VS Code shows the file
  const tk = tokenize(text, label);
  const ck = makeChecker(text, label, tk);
  stats.files++; stats.lines += text.split('\n').length; stats.tokens += tk.tokens.length;
  lexicalChecks(text, ck, stats);
  const marks = parseStp(text);
  if (marks) { stats.parsed++; parserChecks(text, marks, ck, stats); }
  else {
    stats.lexicalOnly.push(path.basename(label));
    if (mustParse) fail(`${label}: does not parse (the check's own pest port)`);
  }
  for (const [needle, nth, pred, what, len, offset = 0] of extra) {
    let at = -1;
    for (let i = 0; i <= nth; i++) at = text.indexOf(needle, at + 1);
    if (at < 0) { fail(`${label}: synthetic expectation: ${JSON.stringify(needle)} not found`); continue; }
    at += offset;
    ck.expect(at, at + (len ?? needle.length - offset), pred, what, false);
  }
  stats.checks += ck.count;
}

for (const f of files) {
  const text = new TextDecoder('utf-8').decode(fs.readFileSync(f));
  checkText(text, rel(f), { mustParse: rel(f).startsWith('pipelines') });
}
for (const c of SYNTHETIC) checkText(c.text, `synthetic:${c.name}`, { mustParse: c.valid, extra: c.expect });

// ------------------------------------------------- the VS Code extension
function checkExtension() {
  if (!pkg || !langConf) return;
  const lang = pkg.contributes?.languages?.find(l => l.id === 'stp');
  const gram = pkg.contributes?.grammars?.find(g => g.language === 'stp');
  if (pkg.name !== 'stpipe') fail('package.json: name is not stpipe');
  if (!lang || !lang.extensions?.includes('.stp')) fail('package.json: no language stp with extension .stp');
  if (lang && !fs.existsSync(path.join(EXT, lang.configuration ?? ''))) fail('package.json: language configuration file missing');
  if (!gram || gram.scopeName !== grammarJson.scopeName) fail('package.json: grammar scopeName differs from the grammar file');
  if (gram && path.resolve(EXT, gram.path) !== GRAMMAR) fail(`package.json: grammar path ${gram.path} is not syntaxes/stp.tmLanguage.json`);
  if (!pkg.activationEvents?.includes('onLanguage:stp')) fail('package.json: no activationEvents onLanguage:stp');
  if (!/^\^9\./.test(pkg.dependencies?.['vscode-languageclient'] ?? '')) fail('package.json: vscode-languageclient is not ^9');
  if (pkg.contributes?.configuration?.properties?.['stpipe.path']?.default !== 'stpipe') fail('package.json: setting stpipe.path (default stpipe) missing');
  if (!fs.existsSync(path.join(EXT, pkg.main ?? ''))) fail('package.json: main file missing');
  for (const f of fs.readdirSync(EXT)) if (f.endsWith('.json') && fs.lstatSync(path.join(EXT, f)).isSymbolicLink()) fail(`${f} is a symlink`);

  // language-configuration.json: its regexes are JavaScript ones.
  const rx = (s, what) => { try { return new RegExp(s); } catch (e) { fail(`language-configuration.json: ${what}: ${e.message}`); return null; } };
  const inc = rx(langConf.indentationRules?.increaseIndentPattern, 'increaseIndentPattern');
  const dec = rx(langConf.indentationRules?.decreaseIndentPattern, 'decreaseIndentPattern');
  if (langConf.wordPattern) rx(langConf.wordPattern, 'wordPattern');
  if (langConf.comments?.lineComment !== '#') fail('language-configuration.json: lineComment is not #');
  const indentCases = [
    [inc, 'train sbert {', true], [inc, 'train sbert as s2 {   # stage two', true],
    [inc, 'model m = Transformer(', true], [inc, '  objectives: [', true],
    [inc, 'train m { objectives: [o] }', false], [inc, 'let s = "{"', false], [inc, '# {', false],
    [inc, 'let s = "#" # {', false], [inc, 'data d = tsv("a#b") {  # columns', true],
    [dec, '}', true], [dec, '  ) -> Pooling(mean)', true], [dec, '  objectives: [o]', false],
  ];
  if (inc && dec) for (const [re, line, want] of indentCases) {
    if (re.test(line) !== want) fail(`language-configuration.json: ${re === inc ? 'increase' : 'decrease'}IndentPattern on ${JSON.stringify(line)}: ${!want}`);
  }
  const pairs = (langConf.autoClosingPairs ?? []).map(p => Array.isArray(p) ? p[0] : p.open);
  for (const open of ['(', '[', '{', '"']) if (!pairs.includes(open)) fail(`language-configuration.json: no auto-closing pair for ${open}`);

  // extension.js: syntax, and what it hands to the language client (vscode and
  // vscode-languageclient stubbed).
  try { execFileSync(process.execPath, ['--check', path.join(EXT, 'extension.js')], { stdio: 'pipe' }); }
  catch (e) { fail(`extension.js: ${e.stderr}`); return; }
  const Module = createRequire(import.meta.url)('node:module');
  const seen = { clients: [], stopped: 0 };
  const stubVscode = {
    workspace: {
      getConfiguration: section => ({ get: (k, d) => (section === 'stpipe' && k === 'path') ? '/opt/stpipe/bin/stpipe' : d }),
      onDidChangeConfiguration: () => ({ dispose() {} }),
    },
    window: { showErrorMessage: () => Promise.resolve(undefined), showInformationMessage: () => Promise.resolve(undefined) },
    commands: { registerCommand: () => ({ dispose() {} }) },
  };
  class StubClient {
    constructor(id, name, serverOptions, clientOptions) { seen.clients.push({ id, name, serverOptions, clientOptions }); }
    start() { return Promise.resolve(); }
    stop() { seen.stopped++; return Promise.resolve(); }
  }
  const stubs = { vscode: stubVscode, 'vscode-languageclient/node': { LanguageClient: StubClient, TransportKind: { stdio: 0, ipc: 1, pipe: 2 } } };
  const origLoad = Module._load;
  Module._load = function (request, ...rest) { return request in stubs ? stubs[request] : origLoad.call(this, request, ...rest); };
  return (async () => {
    try {
      const extPath = path.join(EXT, 'extension.js');
      const ext = createRequire(extPath)(extPath);
      await ext.activate({ subscriptions: [] });
      const c = seen.clients[0];
      if (!c) { fail('extension.js: activate() created no LanguageClient'); return; }
      const so = c.serverOptions;
      if (so.command !== '/opt/stpipe/bin/stpipe' || JSON.stringify(so.args) !== '["lsp"]') fail(`extension.js: server options ${JSON.stringify(so)}: not {command: stpipe.path, args: ["lsp"]}`);
      if (so.transport !== undefined) fail('extension.js: a transport on an Executable makes the client add --stdio to the arguments');
      if (JSON.stringify(c.clientOptions.documentSelector) !== '[{"scheme":"file","language":"stp"}]') fail(`extension.js: documentSelector ${JSON.stringify(c.clientOptions.documentSelector)}`);
      await ext.deactivate();
      if (seen.stopped !== 1) fail('extension.js: deactivate() did not stop the client');
    } catch (e) {
      fail(`extension.js: activating with stubs failed: ${e.stack ?? e}`);
    } finally {
      Module._load = origLoad;
    }
  })();
}
await checkExtension();

report();

function report() {
  const kinds = Object.entries(stats?.marks ?? {}).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k.replace(/^kw:/, '')} ${v}`).join(', ');
  console.log(`grammar: ${rel(GRAMMAR)} (${regexCount} regexes compiled)`);
  if (stats) {
    console.log(`tokenized ${stats.files} files (${files.length} from pipelines/ and tests/invalid/, ${SYNTHETIC.length} synthetic), ${stats.lines} lines, ${stats.tokens} tokens`);
    console.log(`lexical checks: ${stats.comments} comments, ${stats.strings} strings, ${stats.interpolations} interpolations, ${stats.keywords} statement keywords, ${stats.numbers} numbers`);
    console.log(`parsed by the pest port: ${stats.parsed} files; lexical checks only (syntax errors): ${stats.lexicalOnly.length ? stats.lexicalOnly.join(', ') : 'none'}`);
    if (VERBOSE) console.log(`parser marks checked: ${kinds}`);
    console.log(`${stats.checks} scope checks; package.json, language-configuration.json and extension.js checked`);
  }
  for (const l of failureLines) console.log(`FAIL ${l}`);
  if (failures > failureLines.length) console.log(`... and ${failures - failureLines.length} more`);
  console.log(failures ? `FAILED: ${failures} failure(s)` : 'OK');
  process.exit(failures ? 1 : 0);
}
