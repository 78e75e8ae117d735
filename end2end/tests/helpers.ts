import { APIRequestContext, Page, expect, test as base } from '@playwright/test';
import { createHmac } from 'node:crypto';
import mysql from 'mysql2/promise';
import { readdirSync } from 'node:fs';
import path from 'node:path';

/**
 * Playwright's `test`, failing any journey in which a page logs a console error, throws,
 * or reports a Content-Security-Policy violation: hydration must work under the CSP.
 * Refused requests (4xx answers the journey provokes on purpose) are not errors.
 */
export const test = base.extend<{ page: Page }>({
  page: async ({ page }, use) => {
    const problems: string[] = [];
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`);
      });
    });
    page.on('console', (msg) => {
      const text = msg.text();
      if (msg.type() === 'error' && !/Failed to load resource: the server responded with a status of 4\d\d/.test(text)) {
        problems.push(`console: ${text}`);
      }
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    // A page must carry its own policy (with the hydration scripts' nonce); naming the
    // response that lacks it tells which request a CSP violation came from.
    page.on('response', async (response) => {
      // Pages only: not the redirects a plain form's post answers with, nor downloads.
      const status = response.status();
      if (response.request().resourceType() !== 'document' || (status >= 300 && status < 400)) return;
      const headers = await response.headersArray().catch(() => []);
      const type = headers.find((h) => h.name.toLowerCase() === 'content-type')?.value ?? '';
      if (!type.startsWith('text/html')) return;
      const policies = headers.filter((h) => h.name.toLowerCase() === 'content-security-policy');
      if (!policies.some((h) => h.value.includes("'nonce-"))) {
        const id = headers.find((h) => h.name.toLowerCase() === 'x-request-id')?.value;
        problems.push(`document without the page's policy: ${response.status()} ${response.url()} (request ${id})`);
      }
    });
    await use(page);
    expect(problems, 'no console errors or CSP violations').toEqual([]);
  },
});
export { expect } from '@playwright/test';

// Journeys compare what the pages show with direct queries of the MySQL database the
// server uses (the e2e database under scripts/test).
const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://portal:portal@127.0.0.1:3307/portal';

export async function query<T = any>(sql: string, params: unknown[] = []): Promise<T[]> {
  const conn = await mysql.createConnection(MYSQL_URL);
  try {
    const [rows] = await conn.query(sql, params);
    return rows as T[];
  } finally {
    await conn.end();
  }
}

/** The demo accounts, with the published TOTP secrets of the staff ones. */
export const DEMO = {
  customer: { username: 'demo.customer', password: 'Paperclip-Harbor-42', secret: undefined as string | undefined },
  worker: { username: 'demo.worker', password: 'Stapler-Lantern-77', secret: 'STAPLERLANTERNDEMOWORKERSECRETAA' },
  manager: { username: 'demo.manager', password: 'Ledger-Orchard-19', secret: 'LEDGERORCHARDDEMOMANAGERSECRETAA' },
};

function base32(secret: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secret.replace(/=+$/, '').toUpperCase()) {
    bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  }
  const bytes = bits.match(/.{8}/g) ?? [];
  return Buffer.from(bytes.map((b) => parseInt(b, 2)));
}

/** The RFC 6238 code (SHA-1, 6 digits, 30 s steps) for `step`, as an authenticator app shows it. */
export function totp(secret: string, step: number): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 15;
  return ((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).toString().padStart(6, '0');
}

/**
 * A code the server has not accepted yet for `username`: each code works once, for its
 * 30 s step and the neighbouring ones, so this waits for the next step when needed.
 */
export async function nextCode(username: string, secret: string): Promise<string> {
  const [row] = await query('SELECT f.last_step FROM second_factors f JOIN users u ON u.id = f.user_id WHERE u.username = ?', [
    username,
  ]);
  const now = () => Math.floor(Date.now() / 30_000);
  // The current step rather than the previous one: a code computed at the end of a step must
  // still be accepted after the page has loaded and the code is sent.
  const step = Math.max(now(), row?.last_step == null ? 0 : Number(row.last_step) + 1);
  while (now() + 1 < step) await new Promise((r) => setTimeout(r, 500));
  return totp(secret, step);
}

/** The TOTP secret of a demo account, if it has one. */
function demoSecret(username: string): string | undefined {
  return Object.values(DEMO).find((d) => d.username === username)?.secret;
}

export const PASSWORD = 'Quiet-Marble-Orchard-58';

/**
 * The demo seed writes 5,000 sales in the background at start-up: wait for it. Journeys
 * that ran before may have deleted a few.
 */
export async function demoSeeded() {
  await expect
    .poll(async () => Number((await query('SELECT COUNT(*) AS n FROM sales'))[0].n), { timeout: 60_000 })
    .toBeGreaterThanOrEqual(4990);
}

/** 5000 → "5,000", as the UI groups counts. */
export function grouped(n: number | string): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** A username nobody else in this run has. */
export function unique(prefix: string): string {
  return `${prefix}${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
}

/** Waits until the WASM bundle has hydrated the page, so clicks run client-side. */
export async function hydrated(page: Page) {
  await page.waitForFunction(() => document.body.dataset.hydrated === 'true', null, { timeout: 30_000 });
}

/** Logs in, answering the second step with a computed code when the account has a secret. */
export async function login(page: Page, username: string, password: string, secret = demoSecret(username)) {
  await page.goto('/login');
  // Typing before hydration would be undone by it (inputs are bound to signals).
  await hydrated(page);
  await submitLogin(page, username, password);
  if (secret) await secondStep(page, username, secret);
}

/** Answers the second step the login is waiting at. */
export async function secondStep(page: Page, username: string, secret: string) {
  // The code field is not bound to a signal, so hydration keeps what is typed; a click
  // before hydration posts the plain form, which ends in the same place.
  await expect(page).toHaveURL(/\/login\/second-step/);
  await page.getByLabel('Code').fill(await nextCode(username, secret));
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page).not.toHaveURL(/\/login/);
}

/** Logs an API context in (both steps), as a browser would: with the site's Origin. */
export async function apiLogin(request: APIRequestContext, username: string, password: string, origin: string) {
  const headers = { Origin: origin };
  const first = await request.post('/api/login', { form: { username, password }, headers });
  expect(first.status(), await first.text()).toBe(200);
  const secret = demoSecret(username);
  if (secret) {
    const second = await request.post('/api/login/second-step', {
      form: { code: await nextCode(username, secret) },
      headers,
    });
    expect(second.status(), await second.text()).toBe(200);
  }
}

/** Fills in and sends the login form already on the page. */
export async function submitLogin(page: Page, username: string, password: string) {
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
}

/** A guarded page sends an anonymous visitor to log in, and back there afterwards. */
export async function loginReturnsToGuardedPage(page: Page) {
  await page.goto('/management/users');
  await expect(page).toHaveURL(/\/login\?next=/);
  await submitLogin(page, DEMO.manager.username, DEMO.manager.password);
  await secondStep(page, DEMO.manager.username, DEMO.manager.secret);
  await expect(page).toHaveURL(/\/management\/users$/);
}

export async function logout(page: Page) {
  await page.getByRole('button', { name: 'Log out' }).click();
  await expect(page).toHaveURL(/\/login$/);
}

/** The address a journey registers `username` with. */
export function emailOf(username: string): string {
  return `${username}@example.com`;
}

export async function register(page: Page, username: string, role: string) {
  await page.goto('/register');
  await hydrated(page);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Email').fill(emailOf(username));
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByLabel('Confirm password').fill(PASSWORD);
  await page.getByLabel('Role').selectOption({ label: role });
  await page.getByRole('button', { name: 'Create account' }).click();
}

const MAILPIT_URL = `http://127.0.0.1:${process.env.PORTAL_MAILPIT_PORT ?? '8025'}`;

/** Waits for a message to `address` whose subject contains `subject`, as Mailpit caught it. */
export async function mailTo(address: string, subject: string): Promise<{ subject: string; text: string }> {
  let found: { subject: string; text: string } | undefined;
  await expect
    .poll(
      async () => {
        const search = await fetch(`${MAILPIT_URL}/api/v1/search?query=${encodeURIComponent(`to:"${address}"`)}`);
        const { messages = [] } = (await search.json()) as { messages?: { ID: string; Subject: string }[] };
        const hit = messages.find((m) => m.Subject.includes(subject));
        if (hit) {
          const full = (await (await fetch(`${MAILPIT_URL}/api/v1/message/${hit.ID}`)).json()) as { Text: string };
          found = { subject: hit.Subject, text: full.Text };
        }
        return Boolean(found);
      },
      { timeout: 20_000, message: `a "${subject}" mail to ${address}` },
    )
    .toBe(true);
  return found!;
}

/** The code mailed to `username` when they began setting up a second factor. */
export async function setupCode(username: string): Promise<string> {
  const mail = await mailTo(emailOf(username), 'Your code to set up two-factor authentication');
  const match = mail.text.match(/\b(\d{8})\b/);
  expect(match, `an 8-digit code in: ${mail.text}`).not.toBeNull();
  return match![1];
}

/** The site path of the first link to `path` in a mail (`/verify-email?token=…`). */
export function linkIn(mail: { text: string }, path: string): string {
  const match = mail.text.match(new RegExp(`https?://[^/\\s]+(${path}\\?token=[0-9a-f]+)`));
  expect(match, `a ${path} link in: ${mail.text}`).not.toBeNull();
  return match![1];
}

/** Opens the confirmation link mailed to `username`'s address and confirms it. */
export async function confirmEmail(page: Page, username: string) {
  const mail = await mailTo(emailOf(username), 'Confirm your email address');
  await page.goto(linkIn(mail, '/verify-email'));
  await hydrated(page);
  // The page names the address and the account before anyone confirms.
  await expect(page.getByTestId('pending-address')).toContainText(emailOf(username));
  await expect(page.getByTestId('pending-address')).toContainText(username);
  await page.getByRole('button', { name: 'Confirm my address' }).click();
  await expect(page.getByTestId('email-verified')).toBeVisible();
}

/** A sale as the edit form sends it: three packs of printer paper bought by `email`. */
export function saleInput(email: string, saleDate = '2026-03-04T10:30', store = 'Denver') {
  return {
    sale_date: saleDate,
    items: [{ name: 'printer paper', tags: ['office'], price: '12.50', quantity: '3' }],
    store_location: store,
    customer_gender: 'F',
    customer_age: '41',
    customer_email: email,
    customer_satisfaction: '4',
    coupon_used: false,
    purchase_method: 'Online',
  };
}

const SPLIT_PLACEHOLDER = '__wasm_split_placeholder__';

/**
 * Every JS file of the bundle the server can serve, fetched through it: each answers
 * and none imports the splitter's placeholder module, which only a build without
 * `--split` leaves behind (the browser then fails to resolve it and never hydrates).
 */
export async function servedScriptsResolveTheirChunks(request: APIRequestContext) {
  const pkg = path.resolve(__dirname, '../../target/site/pkg');
  const scripts = readdirSync(pkg, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.js'));
  expect(scripts.some((f) => f.includes('__wasm_split')), `a split build in ${pkg}`).toBe(true);
  for (const file of scripts) {
    const response = await request.get(`/pkg/${file}`);
    expect(response.status(), `/pkg/${file} is served`).toBe(200);
    expect(await response.text(), `/pkg/${file} imports no unresolved chunk`).not.toContain(SPLIT_PLACEHOLDER);
  }
}
