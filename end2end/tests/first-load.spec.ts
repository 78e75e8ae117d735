import { type Page, test as plain } from '@playwright/test';
import {
  DEMO,
  PASSWORD,
  expect,
  hydrated,
  login,
  query,
  secondStep,
  servedScriptsResolveTheirChunks,
  submitLogin,
  test,
  unique,
} from './helpers';

/**
 * A slow phone: the CPU slowed 6x through the DevTools protocol, and the app's code held
 * back 3 s on the wire, so the page sits server-rendered but not hydrated for a while.
 */
async function slowPhone(page: Page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: 6 });
  await page.route('**/pkg/*.wasm', async (route) => {
    await new Promise((r) => setTimeout(r, 3_000));
    await route.continue();
  });
}

/** Opens the registration page and types into it as soon as the server's HTML is there. */
async function typeRegistration(page: Page, username: string) {
  await page.goto('/register', { waitUntil: 'commit' });
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Email').fill(`${username}@example.com`);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByLabel('Confirm password').fill(PASSWORD);
}

/** Sends the registration form and checks the account exists. */
async function sendRegistration(page: Page, username: string) {
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByRole('heading', { name: 'Check your inbox' })).toBeVisible();
  expect(await query('SELECT status FROM users WHERE username = ?', [username])).toHaveLength(1);
}

const notHydrated = (page: Page) => page.evaluate(() => document.body.dataset.hydrated !== 'true');

test('what is typed before the page hydrated survives hydration and is sent', async ({ page }) => {
  await slowPhone(page);
  const username = unique('early');
  await typeRegistration(page, username);
  expect(await notHydrated(page), 'typed before hydration').toBe(true);
  await hydrated(page);
  await expect(page.getByLabel('Username')).toHaveValue(username);
  await sendRegistration(page, username);
});

test('a form sent before the page hydrated is posted as plain HTML with the same result', async ({ page }) => {
  await slowPhone(page);
  const username = unique('eager');
  await typeRegistration(page, username);
  await sendRegistration(page, username);

  await page.goto('/login', { waitUntil: 'commit' });
  await submitLogin(page, DEMO.customer.username, DEMO.customer.password);
  await expect(page).toHaveURL(/\/customer$/);
  await expect(page.getByRole('heading', { name: 'My purchases' })).toBeVisible();

  // A staff login sent early goes through its second step the same way.
  await page.context().clearCookies();
  await page.goto('/login', { waitUntil: 'commit' });
  await submitLogin(page, DEMO.worker.username, DEMO.worker.password);
  await secondStep(page, DEMO.worker.username, DEMO.worker.secret);
  await expect(page).toHaveURL(/\/worker$/);
});

test("moving between a manager's pages loads their code without a full page load", async ({ page }) => {
  await login(page, DEMO.manager.username, DEMO.manager.password);
  await expect(page).toHaveURL(/\/management$/);
  await hydrated(page);
  await page.evaluate(() => ((window as any).__noReload = true));
  const chunks: string[] = [];
  page.on('request', (r) => {
    if (r.url().endsWith('.wasm')) chunks.push(new URL(r.url()).pathname);
  });
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users' }).click();
  await expect(page.getByRole('heading', { name: 'Users', exact: true })).toBeVisible();
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Sales' }).click();
  await expect(page.getByTestId('sales-table')).toBeVisible();
  expect(await page.evaluate(() => (window as any).__noReload)).toBe(true);
  // The user administration and the sales table came as chunks of their own.
  expect(chunks.length).toBeGreaterThan(0);
});

// Plain Playwright: the failed download logs errors on purpose.
plain('a page whose code fails to download says so and loads on retry', async ({ page }) => {
  await login(page, DEMO.manager.username, DEMO.manager.password);
  await expect(page).toHaveURL(/\/management$/);
  await hydrated(page);
  await page.route('**/pkg/*.wasm', (route) => route.abort());
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users' }).click();
  const notice = page.getByRole('alert').filter({ hasText: 'could not be loaded' });
  await expect(notice).toBeVisible();
  await page.unroute('**/pkg/*.wasm');
  await notice.getByRole('link', { name: 'Retry' }).click();
  await expect(page.getByRole('heading', { name: 'Users', exact: true })).toBeVisible();
  await hydrated(page);
  await expect(notice).toHaveCount(0);
});

test('no script the server serves imports a chunk the build left unresolved', async ({ request }) => {
  await servedScriptsResolveTheirChunks(request);
});
