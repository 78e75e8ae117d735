// First load of each landing page, as a user on a slow phone feels it: a cold cache,
// the network throttled to a mobile profile and the CPU slowed 4x through the DevTools
// protocol, in headless Chromium. Prints a Markdown table: compressed bytes of WASM, JS
// and CSS on the wire, the HTML document and the data fetched by the page on the wire,
// requests, the time to first paint and the time until the page responds to input (the
// app marks <body data-hydrated> once hydrated), each against a hello-world Leptos page
// measured in the same run as the floor.
//
//   node end2end/scripts/first-load.mjs <portal base URL> <hello-world site dir> [runs] [proxy URL]
//
// The portal must run the release build with the demo data (scripts/bench wasm does it).
// The hello-world page is served from its directory here, brotli-compressed like the
// portal's files. With a proxy URL (an HTTPS reverse proxy in front of a second instance,
// as a chain deploys it), every page is measured again through it over HTTP/1.1 and over
// HTTP/2, and a second table compares the three: a split bundle is dozens of requests,
// and HTTP/1.1 fetches at most six at a time.
import { chromium } from '@playwright/test';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize } from 'node:path';
import { brotliCompressSync, constants } from 'node:zlib';
import mysql from 'mysql2/promise';

const [portal, helloDir, runsArg, proxy] = process.argv.slice(2);

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };
const helloServer = createServer((req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  const file = join(helloDir, normalize(path === '/' ? '/index.html' : path));
  let body;
  try {
    body = readFileSync(file);
  } catch {
    res.writeHead(404).end();
    return;
  }
  const compressed = brotliCompressSync(body, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } });
  res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'content-encoding': 'br' });
  res.end(compressed);
});
await new Promise((resolve) => helloServer.listen(0, '127.0.0.1', resolve));
const hello = `http://127.0.0.1:${helloServer.address().port}`;
const RUNS = Number(runsArg ?? 3);
// A smoke run (PORTAL_BENCH_SMOKE=1) loads the debug build, whose WASM is megabytes: it
// proves the measurement runs, so it does not throttle.
const SMOKE = process.env.PORTAL_BENCH_SMOKE === '1';
// "Slow 4G"-like: 1.6 Mbit/s down, 750 kbit/s up, 150 ms round trip.
const NETWORK = SMOKE
  ? { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 }
  : { offline: false, latency: 150, downloadThroughput: 1_600_000 / 8, uploadThroughput: 750_000 / 8 };
const CPU_SLOWDOWN = SMOKE ? 1 : 4;

const DEMO = {
  customer: { username: 'demo.customer', password: 'Paperclip-Harbor-42' },
  worker: { username: 'demo.worker', password: 'Stapler-Lantern-77', secret: 'STAPLERLANTERNDEMOWORKERSECRETAA' },
  manager: { username: 'demo.manager', password: 'Ledger-Orchard-19', secret: 'LEDGERORCHARDDEMOMANAGERSECRETAA' },
};

const PAGES = [
  { path: '/login', who: null },
  { path: '/customer', who: 'customer' },
  { path: '/worker', who: 'worker' },
  { path: '/worker/sales/new', who: 'worker' },
  { path: '/management', who: 'manager' },
  { path: '/management/users', who: 'manager' },
];

function totp(secret, step) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const bits = [...secret].map((c) => alphabet.indexOf(c).toString(2).padStart(5, '0')).join('');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1] & 15;
  return ((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).toString().padStart(6, '0');
}

/** A code not yet used by `username` (each is accepted once; waits for the next step if needed). */
async function nextCode(db, username, secret) {
  const [[row]] = await db.query(
    'SELECT f.last_step FROM second_factors f JOIN users u ON u.id = f.user_id WHERE u.username = ?',
    [username],
  );
  const now = () => Math.floor(Date.now() / 30_000);
  const step = Math.max(now(), row?.last_step == null ? 0 : Number(row.last_step) + 1);
  while (now() + 1 < step) await new Promise((r) => setTimeout(r, 500));
  return totp(secret, step);
}

async function logIn(context, db, who, base) {
  const account = DEMO[who];
  const headers = { Origin: base };
  const first = await context.request.post(`${base}/api/login`, {
    form: { username: account.username, password: account.password },
    headers,
  });
  if (!first.ok()) throw new Error(`login of ${account.username}: ${first.status()}`);
  if (account.secret) {
    const code = await nextCode(db, account.username, account.secret);
    const second = await context.request.post(`${base}/api/login/second-step`, { form: { code }, headers });
    if (!second.ok()) throw new Error(`second step of ${account.username}: ${second.status()}`);
  }
}

/** One cold load of `url`: bytes on the wire by kind, requests, ms to first paint and until hydrated. */
async function coldLoad(context, url) {
  const page = await context.newPage();
  await page.addInitScript(() => {
    new MutationObserver((_, observer) => {
      if (document.body?.dataset.hydrated === 'true') {
        window.__interactiveAt = performance.now();
        observer.disconnect();
      }
    }).observe(document, { attributes: true, subtree: true, attributeFilter: ['data-hydrated'] });
  });
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  await cdp.send('Network.emulateNetworkConditions', NETWORK);
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: CPU_SLOWDOWN });
  const kinds = new Map();
  const bytes = { wasm: 0, js: 0, css: 0, html: 0, data: 0, other: 0 };
  let requests = 0;
  cdp.on('Network.responseReceived', ({ requestId, response, type }) => {
    const path = new URL(response.url).pathname;
    const kind = path.endsWith('.wasm')
      ? 'wasm'
      : path.endsWith('.js')
        ? 'js'
        : path.endsWith('.css')
          ? 'css'
          : type === 'Document'
            ? 'html'
            : type === 'Fetch' || type === 'XHR'
              ? 'data'
              : 'other';
    kinds.set(requestId, kind);
  });
  cdp.on('Network.loadingFinished', ({ requestId, encodedDataLength }) => {
    requests += 1;
    bytes[kinds.get(requestId) ?? 'other'] += encodedDataLength;
  });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // A Rust panic reaches the console (its hook's message) before the trap reaches pageerror.
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('requestfailed', (r) => errors.push(`${r.url()}: ${r.failure()?.errorText}`));
  await page.goto(url, { waitUntil: 'commit' });
  await page
    .waitForFunction(() => window.__interactiveAt !== undefined, null, { timeout: 180_000, polling: 100 })
    .catch((e) => {
      throw new Error(`${url} was not interactive: ${e.message}\n${errors.join('\n')}`);
    });
  const interactive = await page.evaluate(() => window.__interactiveAt);
  await page.waitForLoadState('networkidle');
  const paint = await page.evaluate(
    () => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? Number.NaN,
  );
  await page.close();
  return { bytes, requests, paint, interactive };
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

const kb = (n) => (n / 1024).toFixed(1);

const launch = (args = []) =>
  chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', ...args],
  });
const db = await mysql.createConnection(process.env.MYSQL_URL);

const sessions = new Map();
/**
 * The cookies of `who` signed in at `base`, signed in once: each one-time code is accepted
 * once, so signing in for every load would wait for the next 30-second step.
 */
async function session(browser, base, who) {
  if (!who) return undefined;
  const key = `${who} ${base}`;
  if (!sessions.has(key)) {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    await logIn(context, db, who, base);
    sessions.set(key, await context.storageState());
    await context.close();
  }
  return sessions.get(key);
}

/** The median figures of each of `entries` loaded `RUNS` times from `base` (or the floor's server). */
async function measure(browser, base, entries) {
  const rows = [];
  for (const { path, who, floor } of entries) {
    const runs = [];
    for (let i = 0; i < RUNS; i++) {
      // The proxy's certificate is self-signed.
      const context = await browser.newContext({ ignoreHTTPSErrors: true, storageState: await session(browser, base, who) });
      runs.push(await coldLoad(context, floor ? `${hello}${path}` : `${base}${path}`));
      await context.close();
    }
    const pick = (f) => median(runs.map(f));
    rows.push({
      page: floor ? 'hello-world Leptos page (floor)' : `${path}${who ? ` (${who})` : ''}`,
      wasm: pick((r) => r.bytes.wasm),
      js: pick((r) => r.bytes.js),
      css: pick((r) => r.bytes.css),
      html: pick((r) => r.bytes.html),
      data: pick((r) => r.bytes.data),
      requests: pick((r) => r.requests),
      paint: pick((r) => r.paint),
      interactive: pick((r) => r.interactive),
    });
  }
  return rows;
}

/** One load left out of the figures: a new browser's first page pays for its own start. */
async function warmUp(browser) {
  const context = await browser.newContext();
  await coldLoad(context, `${hello}/`);
  await context.close();
}

const browser = await launch();
await warmUp(browser);
const rows = await measure(browser, portal, [{ path: '/', who: null, floor: true }, ...PAGES]);
let viaProxy;
if (proxy) {
  const http1 = await launch(['--disable-http2']);
  await warmUp(http1);
  viaProxy = { http1: await measure(http1, proxy, PAGES), http2: await measure(browser, proxy, PAGES) };
  await http1.close();
}
await db.end();
await browser.close();
helloServer.close();

const floor = rows[0];
console.log(
  SMOKE
    ? `\n## First load, smoke run (debug build, no throttling: the figures mean nothing)\n`
    : `\n## First load, cold cache (${(NETWORK.downloadThroughput * 8) / 1e6} Mbit/s, ${NETWORK.latency} ms, CPU ${CPU_SLOWDOWN}x slower; median of ${RUNS})\n`,
);
const ratio = (value, base) => `${(value / base).toFixed(2)}x`;
console.log(
  '| page | WASM+JS KB | vs floor | CSS KB | HTML KB | data KB | requests | first paint ms | vs floor | interactive ms | vs floor |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  const code = r.wasm + r.js;
  console.log(
    `| ${r.page} | ${kb(code)} | ${ratio(code, floor.wasm + floor.js)} | ${kb(r.css)} | ${kb(r.html)} | ${kb(r.data)} | ${r.requests} | ${Math.round(r.paint)} | ${ratio(r.paint, floor.paint)} | ${Math.round(r.interactive)} | ${ratio(r.interactive, floor.interactive)} |`,
  );
}
console.log('\nHTML and data are the bytes on the wire (compressed when the server compresses them).');

if (viaProxy) {
  console.log('\n## The same pages through an HTTPS reverse proxy (HAProxy), interactive ms\n');
  console.log(`Against the floor above (${Math.round(floor.interactive)} ms); "vs floor" and "vs direct" are for HTTP/2.\n`);
  console.log('| page | requests | direct, HTTP/1.1 | proxy, HTTP/1.1 | proxy, HTTP/2 | vs floor | vs direct |');
  console.log('|---|---|---|---|---|---|---|');
  rows.slice(1).forEach((r, i) => {
    const h1 = viaProxy.http1[i].interactive;
    const h2 = viaProxy.http2[i].interactive;
    console.log(
      `| ${r.page} | ${r.requests} | ${Math.round(r.interactive)} | ${Math.round(h1)} | ${Math.round(h2)} | ${(h2 / floor.interactive).toFixed(2)}x | ${(h2 / r.interactive).toFixed(2)}x |`,
    );
  });
}
