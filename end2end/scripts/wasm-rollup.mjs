// Rolls `twiggy top -f csv` (on standard input) up by crate and prints a Markdown table,
// largest first. Used by scripts/wasm-profile.
//
// A function belongs to the crate its path starts with; an impl (`<T as Trait>::f`) to the
// crate of its type, or of its trait when the type is a primitive or a generic parameter.
import { createInterface } from 'node:readline';

const SHOWN = 18;
// A path's first segment, with the disambiguator rustc may add (`core[c5930c85a12de822]::`).
const CRATE = /^([a-z_][a-z0-9_]*)(?:\[[0-9a-f]+\])?::/;

function crateOf(name) {
  if (/^data\[\d+\]$/.test(name) || name.startsWith('data segment')) return '(static data: strings, tables)';
  if (/^(code|func)\[\d+\]$/.test(name)) return '(unnamed functions)';
  if (/^(import|export|table|elem|type|global|memory)\b/.test(name)) return '(module structure)';
  if (name.startsWith('__wbg') || name.startsWith('__wbindgen') || name.startsWith('wasm_bindgen')) return 'wasm-bindgen';
  let path = name;
  if (path.startsWith('<')) {
    const inner = path.slice(1).replace(/^(&|mut |\*const |\*mut |dyn |\[|\()+/, '');
    const own = inner.match(CRATE);
    if (own) return normalize(own[1]);
    const trait = inner.match(new RegExp(` as ${CRATE.source.slice(1)}`));
    if (trait) return normalize(trait[1]);
    path = inner;
  }
  const first = path.match(CRATE);
  return first ? normalize(first[1]) : '(other)';
}

function normalize(crate) {
  return ['core', 'alloc', 'std'].includes(crate) ? 'std (core, alloc)' : crate;
}

function parseCsvLine(line) {
  const fields = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      fields.push(field);
      field = '';
    } else field += c;
  }
  fields.push(field);
  return fields;
}

let header;
const sizes = new Map();
let total = 0;
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const fields = parseCsvLine(line);
  if (!header) {
    header = fields;
    continue;
  }
  const name = fields[header.indexOf('Name')];
  const size = Number(fields[header.indexOf('ShallowSize')]);
  // Custom sections (names kept for this profile, relocations) are not in the deployed file.
  if (!Number.isFinite(size) || /^Σ|^\.\.\.|^custom section|^"/.test(name)) continue;
  const crate = crateOf(name);
  sizes.set(crate, (sizes.get(crate) ?? 0) + size);
  total += size;
}

const rows = [...sizes.entries()].sort((a, b) => b[1] - a[1]);
console.log('| crate | bytes | share |');
console.log('|---|---|---|');
const pct = (n) => `${((100 * n) / total).toFixed(1)}%`;
for (const [crate, size] of rows.slice(0, SHOWN)) console.log(`| ${crate} | ${size} | ${pct(size)} |`);
const rest = rows.slice(SHOWN).reduce((sum, [, size]) => sum + size, 0);
if (rest > 0) console.log(`| ${rows.length - SHOWN} more crates | ${rest} | ${pct(rest)} |`);
console.log(`| **all** | ${total} | 100% |`);
