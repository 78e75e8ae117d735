import { Page, expect } from '@playwright/test';
import mysql from 'mysql2/promise';

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

export const DEMO = {
  customer: { username: 'demo.customer', password: 'Paperclip-Harbor-42' },
  worker: { username: 'demo.worker', password: 'Stapler-Lantern-77' },
  manager: { username: 'demo.manager', password: 'Ledger-Orchard-19' },
};

export const PASSWORD = 'Quiet-Marble-Orchard-58';

/** A username nobody else in this run has. */
export function unique(prefix: string): string {
  return `${prefix}${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
}

/** Waits until the WASM bundle has hydrated the page, so clicks run client-side. */
export async function hydrated(page: Page) {
  await page.waitForFunction(() => document.body.dataset.hydrated === 'true', null, { timeout: 30_000 });
}

export async function login(page: Page, username: string, password: string) {
  await page.goto('/login');
  // Typing before hydration would be undone by it (inputs are bound to signals).
  await hydrated(page);
  await submitLogin(page, username, password);
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
  await expect(page).toHaveURL(/\/management\/users$/);
}

export async function logout(page: Page) {
  await page.getByRole('button', { name: 'Log out' }).click();
  await expect(page).toHaveURL(/\/login$/);
}

export async function register(page: Page, username: string, role: string) {
  await page.goto('/register');
  await hydrated(page);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Email').fill(`${username}@example.com`);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByLabel('Confirm password').fill(PASSWORD);
  await page.getByLabel('Role').selectOption({ label: role });
  await page.getByRole('button', { name: 'Create account' }).click();
}
