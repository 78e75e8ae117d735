import { test, expect } from './helpers';

test('home page renders, hydrates, and re-checks status without a reload', async ({ page }) => {
  await page.goto('/');
  await expect(page).toHaveTitle(/Supply Co\. sales portal/);
  await expect(page.getByRole('heading', { level: 1 })).toContainText('Sales for every Supply Co. store');

  const checkedAt = page.getByTestId('checked-at');
  await expect(checkedAt).toContainText('checked at');
  const before = await checkedAt.textContent();

  // A marker on window survives client-side updates but not a page load.
  await page.evaluate(() => ((window as any).__noReload = true));
  // The button only works once the WASM bundle has hydrated the page: keep clicking
  // until the timestamp changes (the first click may land before hydration finishes).
  await expect(async () => {
    await page.getByTestId('check-status').click();
    await expect(checkedAt).not.toHaveText(before ?? '', { timeout: 1_000 });
  }).toPass({ timeout: 30_000 });
  expect(await page.evaluate(() => (window as any).__noReload)).toBe(true);
  await page.screenshot({ path: 'output/home.png', fullPage: true });
});

test('every page names its icon, and the icon is served', async ({ page, request }) => {
  const missing: string[] = [];
  page.on('response', (r) => r.status() === 404 && missing.push(r.url()));
  await page.goto('/login');
  const href = await page.locator('link[rel=icon]').getAttribute('href');
  expect(href).toBe('/favicon.svg');
  const icon = await request.get(href!);
  expect(icon.status()).toBe(200);
  expect(icon.headers()['content-type']).toContain('image/svg+xml');
  await page.waitForLoadState('networkidle');
  expect(missing, 'nothing the page asks for is missing').toEqual([]);
});

test('/healthz reports both stores up as JSON', async ({ request }) => {
  const res = await request.get('/healthz');
  expect(res.status()).toBe(200);
  const body = await res.json();
  expect(body.status).toBe('ok');
  expect(body.mysql.up).toBe(true);
  expect(body.mongodb.up).toBe(true);
  expect(typeof body.version).toBe('string');
});

test('unknown pages get a helpful 404', async ({ page }) => {
  const res = await page.goto('/no-such-page');
  expect(res?.status()).toBe(404);
  await expect(page.getByRole('heading', { name: 'Page not found' })).toBeVisible();
  await expect(page.getByRole('link', { name: 'Go to the start page' })).toBeVisible();
});
