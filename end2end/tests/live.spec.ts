import { Browser, BrowserContext, Page } from '@playwright/test';
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { DEMO, demoSeeded, expect, grouped, hydrated, login, query, saleInput, test } from './helpers';

// Two instances of the portal on the same databases behind HAProxy, as a chain runs it:
// the one `cargo leptos end-to-end` started, and a second started here. Each browser
// context is routed to one instance by a header the proxy reads, so the journeys below
// see an edit made on one instance arrive on a page served by the other.
const ROOT = path.resolve(__dirname, '../..');
const PROXY = 3020;
const SECOND = 3010;
const FIRST = Number((process.env.PORTAL_BASE_URL ?? 'http://127.0.0.1:3000').split(':').pop());
const VIA_PROXY = `http://127.0.0.1:${PROXY}`;

let second: ChildProcess | undefined;
let proxy: ChildProcess | undefined;

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.end();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

async function waitForPort(port: number, what: string) {
  await expect.poll(() => portOpen(port), { timeout: 60_000, message: `${what} listens on ${port}` }).toBe(true);
}

/** Another instance of the portal on the same databases, listening on `port`. */
function startInstance(port: number, env: Record<string, string> = {}): ChildProcess {
  const log = openSync(path.join(ROOT, 'end2end/output/second-instance.log'), 'a');
  // The binary cargo-leptos built (under CARGO_TARGET_DIR when set, as CI does); the
  // site it serves is under the workspace's `target/site` either way (`site-root`).
  const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, 'target');
  return spawn(process.env.PORTAL_SERVER_BIN ?? path.join(targetDir, 'debug/server'), [], {
    env: {
      ...process.env,
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      // One portal, one public address (the first instance's, as the proxy's would be):
      // passkeys are bound to it.
      PUBLIC_URL: process.env.PUBLIC_URL ?? `http://127.0.0.1:${FIRST}`,
      LEPTOS_SITE_ROOT: path.join(ROOT, 'target/site'),
      LEPTOS_SITE_PKG_DIR: 'pkg',
      LEPTOS_OUTPUT_NAME: 'portal',
      PORTAL_SEED_DEMO: 'false',
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', log, log],
  });
}

test.beforeAll(async ({ browser }) => {
  const log = openSync(path.join(ROOT, 'end2end/output/second-instance.log'), 'a');
  second = startInstance(SECOND);
  const config = path.join(ROOT, 'end2end/output/haproxy.cfg');
  writeFileSync(
    config,
    [
      'defaults',
      '  mode http',
      '  timeout connect 2s',
      '  timeout client 60s',
      '  timeout server 60s',
      'frontend portal',
      `  bind 127.0.0.1:${PROXY}`,
      '  use_backend second if { req.hdr(x-portal-instance) -m str 2 }',
      '  default_backend first',
      'backend first',
      `  server i1 127.0.0.1:${FIRST}`,
      'backend second',
      `  server i2 127.0.0.1:${SECOND}`,
      '',
    ].join('\n'),
  );
  // Debian installs it in /usr/sbin, which is not on every PATH.
  const haproxy = existsSync('/usr/sbin/haproxy') ? '/usr/sbin/haproxy' : 'haproxy';
  proxy = spawn(haproxy, ['-db', '-f', config], { stdio: ['ignore', log, log] });
  await waitForPort(SECOND, 'the second instance');
  await waitForPort(PROXY, 'HAProxy');
  // One login per account for the whole file: sessions live in MySQL, so a context
  // started from one may use either instance (and staff codes are accepted once each).
  for (const who of [DEMO.worker, DEMO.manager, DEMO.customer]) {
    const context = await browser.newContext({ baseURL: VIA_PROXY });
    const page = await context.newPage();
    await login(page, who.username, who.password);
    await expect(page).not.toHaveURL(/\/login/);
    sessions.set(who.username, await context.storageState());
    await context.close();
  }
});

type Session = Awaited<ReturnType<BrowserContext['storageState']>>;
const sessions = new Map<string, Session>();

test.afterAll(() => {
  second?.kill();
  proxy?.kill();
});

/** A page of `who`'s, whose requests the proxy sends to instance `n`, at `url` with
 * its live stream open. */
async function signedIn(browser: Browser, n: 1 | 2, who: { username: string }, url: string): Promise<Page> {
  const context = await browser.newContext({
    baseURL: VIA_PROXY,
    extraHTTPHeaders: { 'x-portal-instance': String(n) },
    acceptDownloads: true,
    storageState: sessions.get(who.username),
  });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  await page.goto(url);
  await hydrated(page);
  await expect(page.getByTestId('live-status')).toHaveAttribute('data-state', 'live');
  expect(problems).toEqual([]);
  return page;
}

const WITHIN_A_SECOND = { timeout: 1_000 };

test('an edit on one instance updates a worker table on another within a second', async ({ browser }) => {
  await demoSeeded();
  const watcher = await signedIn(browser, 1, DEMO.worker, '/worker');
  const editor = await signedIn(browser, 2, DEMO.manager, '/worker');
  const rows = watcher.locator('[data-testid=sales-table] tbody tr');
  const [editedId, deletedId] = await Promise.all([0, 1].map((i) => rows.nth(i).getAttribute('data-sale-id')));
  const edited = watcher.locator(`tr[data-sale-id="${editedId}"]`);
  const version = Number(await edited.getAttribute('data-version'));
  const matching = Number(((await watcher.getByTestId('matching').textContent()) ?? '').split(' ')[0].replaceAll(',', ''));

  // The watcher is typing a filter (not applied): the update must not disturb it.
  const email = watcher.getByLabel('Search', { exact: true });
  await email.fill('half-typed');
  await expect(email).toBeFocused();

  await editor.goto(`/worker/sales/${editedId}`);
  await hydrated(editor);
  await editor.getByLabel('Store').fill('Live Test Store');
  await editor.getByRole('button', { name: 'Save changes' }).click();
  await expect(editor.getByTestId('saved')).toBeVisible();
  await expect(editor.getByTestId('changed-elsewhere'), 'its own save is not news to the editor').toHaveCount(0);
  await expect(edited).toHaveAttribute('data-version', String(version + 1), WITHIN_A_SECOND);
  await expect(edited).toHaveAttribute('data-mark', 'changed');
  await expect(edited.locator('td').nth(1)).toHaveText('Live Test Store');
  await expect(email).toBeFocused();
  await expect(email).toHaveValue('half-typed');
  await expect(edited).toHaveAttribute('data-mark', '', { timeout: 5_000 });

  // Deleted on the other instance: marked in place, and the count follows.
  await editor.goto('/worker');
  await hydrated(editor);
  const row = editor.locator(`tr[data-sale-id="${deletedId}"]`);
  await row.getByRole('button', { name: 'Delete' }).click();
  await row.getByRole('button', { name: 'Yes, delete' }).click();
  await expect(editor.locator(`tr[data-sale-id="${deletedId}"]`)).toHaveCount(0);
  const deleted = watcher.locator(`tr[data-sale-id="${deletedId}"]`);
  await expect(deleted).toHaveAttribute('data-mark', 'deleted', WITHIN_A_SECOND);
  await expect(deleted).toContainText('Deleted elsewhere');
  await expect(watcher.getByTestId('matching')).toHaveText(`${grouped(matching - 1)} matching sales`, { timeout: 3_000 });
  await expect(watcher).toHaveURL(/\/worker$/);
});

test('an open edit form hears of a change saved elsewhere before its user submits', async ({ browser }) => {
  await demoSeeded();
  const [sale] = await query('SELECT id, version FROM sales ORDER BY sale_date DESC LIMIT 1 OFFSET 5');
  const first = await signedIn(browser, 1, DEMO.worker, `/worker/sales/${sale.id}`);
  const other = await signedIn(browser, 2, DEMO.manager, `/worker/sales/${sale.id}`);
  await first.getByLabel('Age', { exact: true }).fill('44');

  await other.getByLabel('Store').fill('Changed Elsewhere');
  await other.getByRole('button', { name: 'Save changes' }).click();
  await expect(other.getByTestId('saved')).toBeVisible();

  const next = Number(sale.version) + 1;
  const notice = first.getByTestId('changed-elsewhere');
  await expect(notice).toContainText(`version ${next}`, WITHIN_A_SECOND);
  await first.getByRole('button', { name: `Load version ${next}` }).click();
  await expect(first.getByRole('heading', { name: new RegExp(`version ${next}\\)`) })).toBeVisible();
  await expect(first.getByLabel('Store')).toHaveValue('Changed Elsewhere');
  const draft = first.getByTestId('your-draft');
  await expect(draft.getByRole('row', { name: /Age/ })).toContainText('44');
  await expect(draft.getByRole('row', { name: /Store/ })).toContainText('Changed Elsewhere');
  await expect(first.getByTestId('changed-elsewhere')).toHaveCount(0);

  // Deleted elsewhere: said at once, before any save.
  await other.goto('/worker');
  await hydrated(other);
  const row = other.locator(`tr[data-sale-id="${sale.id}"]`);
  await row.getByRole('button', { name: 'Delete' }).click();
  await row.getByRole('button', { name: 'Yes, delete' }).click();
  await expect(other.locator(`tr[data-sale-id="${sale.id}"]`)).toHaveCount(0);
  await expect(first.getByTestId('deleted-elsewhere')).toBeVisible(WITHIN_A_SECOND);
});

test("a customer's stream never carries another customer's sale", async ({ browser }) => {
  await demoSeeded();
  const customer = await signedIn(browser, 1, DEMO.customer, '/customer');
  // A second stream in the customer's page, recording everything it is sent.
  await customer.evaluate(() => {
    const seen: string[] = [];
    (window as any).seen = seen;
    const source = new EventSource('/api/events');
    source.addEventListener('change', (e) => seen.push((e as MessageEvent).data));
    source.addEventListener('pulse', (e) => seen.push(`pulse ${(e as MessageEvent).data}`));
  });
  const [{ email }] = await query("SELECT email FROM users WHERE username = 'demo.customer'");
  const manager = await signedIn(browser, 2, DEMO.manager, '/worker');
  const headers = { Origin: VIA_PROXY };
  for (const address of ['someone.else@example.com', email]) {
    const created = await manager.request.post('/api/sales/create', {
      data: { token: '', input: saleInput(address, '2016-02-03T10:00') },
      headers,
    });
    expect(created.status(), await created.text()).toBe(200);
  }
  await expect.poll(() => customer.evaluate(() => (window as any).seen.length), WITHIN_A_SECOND).toBe(1);
  await customer.waitForTimeout(500);
  const seen: string[] = await customer.evaluate(() => (window as any).seen);
  expect(seen).toHaveLength(1);
  expect(seen[0]).toContain(email);
  expect(seen.join('\n')).not.toContain('someone.else@example.com');
});

test('the analytics follow edits made elsewhere, and export what they show', async ({ browser }) => {
  await demoSeeded();
  const manager = await signedIn(browser, 1, DEMO.manager, '/management?from=2016-01-01&to=2016-12-31');
  const worker = await signedIn(browser, 2, DEMO.worker, '/worker');
  const before = Number((await manager.getByTestId('kpi-sales').textContent())!.replaceAll(',', ''));
  const created = await worker.request.post('/api/sales/create', {
    data: { token: '', input: saleInput('analytics.live@example.com', '2016-05-06T09:30') },
    headers: { Origin: VIA_PROXY },
  });
  expect(created.status(), await created.text()).toBe(200);
  await expect(manager.getByTestId('kpi-sales')).toHaveText(grouped(before + 1), { timeout: 2_000 });

  // The table behind the figures, as CSV: its revenue adds up to the KPI to the cent.
  const [download] = await Promise.all([
    manager.waitForEvent('download'),
    manager.getByTestId('export-analytics').click(),
  ]);
  const csv = readFileSync(await download.path(), 'utf8').trim().split('\r\n');
  expect(csv[0]).toBe('day,store_location,purchase_method,coupon_used,sales,revenue,average_satisfaction');
  const cents = csv.slice(1).reduce((sum, line) => sum + BigInt(line.split(',')[5].replace('.', '')), 0n);
  const shown = (await manager.getByTestId('kpi-revenue').textContent())!.replace(/[$,.]/g, '');
  expect(cents.toString()).toBe(shown);

  // A chart as an SVG file of its own.
  const [svg] = await Promise.all([
    manager.waitForEvent('download'),
    manager.getByRole('button', { name: 'Download the chart Revenue by store as SVG' }).click(),
  ]);
  expect(svg.suggestedFilename()).toBe('revenue-by-store.svg');
  const file = readFileSync(await svg.path(), 'utf8');
  expect(file).toContain('<svg xmlns="http://www.w3.org/2000/svg"');
  expect(file).toContain('<title>Revenue by store</title>');
  expect(file).toContain('Denver');

  // The replication panel follows a sync run through the stream's pulse, not polling.
  await manager.getByRole('button', { name: 'Run sync' }).click();
  const last = manager.getByTestId('last-sync');
  await expect(last).toContainText('Sync completed', { timeout: 30_000 });
  await expect(last).toContainText('Run sync button by demo.manager');
});

test('a change made while a page is still loading its code reaches it once hydrated, and breaks nothing', async ({ browser }) => {
  await demoSeeded();
  const manager = await signedIn(browser, 2, DEMO.manager, '/worker');
  const context = await browser.newContext({
    baseURL: VIA_PROXY,
    extraHTTPHeaders: { 'x-portal-instance': '1' },
    storageState: sessions.get(DEMO.customer.username),
  });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  const streams: string[] = [];
  page.on('request', (r) => r.url().includes('/api/events') && streams.push(r.url()));
  // The customer route's code is held back: the page has its HTML and its main code, and
  // a change to its purchases is saved meanwhile.
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let held!: () => void;
  const holding = new Promise<void>((resolve) => (held = resolve));
  await page.route(/customer_route.*\.wasm$/, async (route) => {
    held();
    await released;
    await route.continue();
  });
  await page.goto('/customer', { waitUntil: 'commit' });
  await holding;
  const [{ email }] = await query("SELECT email FROM users WHERE username = 'demo.customer'");
  const store = `Hydration ${Date.now().toString(36)}`;
  const created = await manager.request.post('/api/sales/create', {
    data: { token: '', input: saleInput(email, '2026-11-30T10:00', store) },
    headers: { Origin: VIA_PROXY },
  });
  expect(created.status(), await created.text()).toBe(200);
  // Long enough for a stream opened early to deliver the change to a half-hydrated page.
  await page.waitForTimeout(1_500);
  expect(streams, 'no stream opens before the page has hydrated').toEqual([]);
  release();

  await hydrated(page);
  await expect(page.locator('[data-testid=purchases] li').first()).toContainText(store, { timeout: 5_000 });
  expect(streams[0], 'the stream starts where the page read its purchases').toMatch(/\/api\/events\?after=\d+$/);
  await expect(page.getByTestId('live-status')).toHaveAttribute('data-state', 'live');
  expect(problems).toEqual([]);
  await context.close();
});

test('a passkey ceremony begun on one instance is finished by another', async ({ browser }) => {
  // Passkeys are bound to a domain name: the page is opened at `localhost`, and the
  // requests that finish each ceremony are sent on to the second instance.
  const context = await browser.newContext({ baseURL: `http://localhost:${FIRST}` });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  // A registration begun on the first instance is finished by the second; a sign-in
  // begun on the second is finished by the first (which then answers with the login's
  // cookie, as it would behind a proxy).
  const bySecond: string[] = [];
  await page.route(/\/api\/passkeys\/(finish|sign-in\/begin)$/, async (route) => {
    const path = new URL(route.request().url()).pathname;
    // The browser's headers, and the `Sec-Fetch-Site` it adds after interception (the
    // page posts to its own origin).
    const headers = { ...(await route.request().allHeaders()), 'sec-fetch-site': 'same-origin' };
    const response = await route.fetch({ url: `http://127.0.0.1:${SECOND}${path}`, headers });
    bySecond.push(`${path} ${response.status()}`);
    await route.fulfill({ response });
  });
  const who = DEMO.customer;
  await login(page, who.username, who.password);
  await expect(page).toHaveURL(/\/customer$/);
  await page.goto('/profile/two-factor');
  await hydrated(page);
  const name = `Across ${Date.now().toString(36)}`;
  const form = page.getByRole('form', { name: 'Add a passkey' });
  await form.getByLabel('Name').fill(name);
  await form.getByLabel('Current password').fill(who.password);
  await form.getByRole('button', { name: 'Add a passkey' }).click();
  await expect(form.getByRole('status')).toHaveText(`Passkey \u201c${name}\u201d added.`);

  await page.getByRole('button', { name: 'Log out' }).click();
  await expect(page).toHaveURL(/\/login$/);
  await hydrated(page);
  await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
  await expect(page).toHaveURL(/\/customer$/);
  expect(bySecond).toEqual(['/api/passkeys/finish 200', '/api/passkeys/sign-in/begin 200']);
  await query('DELETE FROM passkeys WHERE name = ?', [name]);
  await context.close();
});

test('a stream nobody uses pauses without reconnecting, and catches up when its user is back', async ({ browser }) => {
  // An instance whose streams go idle after 2 s without anything to carry.
  const IDLE_PORT = 3030;
  const idling = startInstance(IDLE_PORT, { LIVE_IDLE_SECS: '2' });
  try {
    await waitForPort(IDLE_PORT, 'the instance with a short idle time');
    const context = await browser.newContext({
      baseURL: `http://127.0.0.1:${IDLE_PORT}`,
      storageState: sessions.get(DEMO.customer.username),
    });
    const page = await context.newPage();
    const streams: string[] = [];
    page.on('request', (r) => r.url().includes('/api/events') && streams.push(r.url()));
    await page.goto('/customer');
    await hydrated(page);
    const badge = page.getByTestId('live-status');
    await expect(badge).toHaveAttribute('data-state', 'live');
    await expect(badge).toHaveAttribute('data-state', 'paused', { timeout: 10_000 });
    await expect(badge).toHaveText('◌ Paused: live again when you use the page');
    const opened = streams.length;
    await page.waitForTimeout(4_000);
    expect(streams.length, 'a paused page opens no stream by itself').toBe(opened);

    // A purchase saved elsewhere meanwhile arrives once the user is back.
    const manager = await browser.newContext({ baseURL: VIA_PROXY, storageState: sessions.get(DEMO.manager.username) });
    const [{ email }] = await query("SELECT email FROM users WHERE username = 'demo.customer'");
    const store = `Paused ${Date.now().toString(36)}`;
    const created = await manager.request.post('/api/sales/create', {
      data: { token: '', input: saleInput(email, '2026-11-30T11:00', store) },
      headers: { Origin: VIA_PROXY },
    });
    expect(created.status(), await created.text()).toBe(200);
    await page.keyboard.press('Shift');
    await expect(badge).toHaveAttribute('data-state', 'live');
    expect(streams[streams.length - 1], 'it resumes where it paused').toMatch(/\/api\/events\?after=\d+$/);
    await expect(page.locator('[data-testid=purchases] li').first()).toContainText(store, { timeout: 5_000 });
    await manager.close();
    await context.close();
  } finally {
    idling.kill();
  }
});
