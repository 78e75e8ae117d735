import { Page, Browser } from '@playwright/test';
import { DEMO, demoSeeded, expect, grouped, hydrated, login, query, test } from './helpers';

/** "$9,894,572.27", as the UI formats exact decimals. */
function money(value: string): string {
  const [int, frac = '00'] = value.split('.');
  return `$${int.replace(/\B(?=(\d{3})+(?!\d))/g, ',')}.${frac.padEnd(2, '0').slice(0, 2)}`;
}

async function shot(page: Page, name: string) {
  await page.screenshot({ path: `output/${name}.png`, fullPage: true });
}

test('a customer sees only their own purchases', async ({ page }) => {
  await demoSeeded();
  await login(page, DEMO.customer.username, DEMO.customer.password);
  await expect(page).toHaveURL(/\/customer$/);
  await hydrated(page);
  const [mine] = await query(
    `SELECT COUNT(*) AS n, SUM(s.total) AS spent FROM sales s JOIN users u ON u.email = s.customer_email
     WHERE u.username_key = ?`,
    [DEMO.customer.username],
  );
  expect(Number(mine.n)).toBeGreaterThan(0);
  await expect(page.getByTestId('kpi-count')).toHaveText(String(mine.n));
  await expect(page.getByTestId('kpi-spent')).toHaveText(money(String(mine.spent)));

  // Every sale on every page belongs to this customer.
  const ids: string[] = [];
  for (;;) {
    ids.push(...(await page.locator('[data-sale-id]').evaluateAll((els) => els.map((e) => e.getAttribute('data-sale-id')!))));
    const next = page.getByRole('link', { name: 'Next →' });
    if ((await next.count()) === 0) break;
    await next.click();
    await expect(page.getByTestId('page-info')).toContainText(`Page ${Math.ceil((ids.length + 1) / 10)}`);
  }
  expect(ids.length).toBe(Number(mine.n));
  const owners = await query(
    `SELECT DISTINCT customer_email AS email FROM sales WHERE id IN (${ids.map(() => '?').join(',')})`,
    ids,
  );
  const [me] = await query('SELECT email FROM users WHERE username_key = ?', [DEMO.customer.username]);
  expect(owners.map((o) => o.email)).toEqual([me.email]);

  // The staff pages refuse a customer.
  await page.goto('/worker');
  await expect(page.getByRole('heading', { name: /not allowed|access/i })).toBeVisible();
  await page.goto('/customer');
  await hydrated(page);
  await shot(page, 'customer-dashboard');
});

test('a customer abroad reads times in their own time zone and amounts in their own number format', async ({ browser }) => {
  const context = await browser.newContext({ locale: 'de-DE', timezoneId: 'Europe/Berlin' });
  const page = await context.newPage();
  await login(page, DEMO.customer.username, DEMO.customer.password);
  await expect(page).toHaveURL(/\/customer$/);
  await hydrated(page);
  const [mine] = await query(
    'SELECT SUM(s.total) AS spent FROM sales s JOIN users u ON u.email = s.customer_email WHERE u.username_key = ?',
    [DEMO.customer.username],
  );
  const spent = new Intl.NumberFormat('de-DE', { style: 'currency', currency: 'USD' }).format(Number(mine.spent));
  await expect(page.getByTestId('kpi-spent')).toHaveText(spent);
  const time = page.locator('[data-sale-id] time').first();
  const at = new Date((await time.getAttribute('datetime'))!);
  const berlin = new Intl.DateTimeFormat('de-DE', { dateStyle: 'medium', timeStyle: 'short', timeZone: 'Europe/Berlin' });
  await expect(time).toHaveText(berlin.format(at));
  // The exact time in UTC on hover.
  await expect(time).toHaveAttribute('title', /^\d{4}-\d\d-\d\d \d\d:\d\d UTC$/);
  await context.close();
});

async function fillSale(page: Page, email: string) {
  await page.getByLabel('Date and time (UTC)').fill('2016-05-04T10:30');
  await page.getByLabel('Store', { exact: true }).fill('Denver');
  await page.getByLabel('Purchase method', { exact: true }).selectOption('Online');
  await page.getByLabel('Email', { exact: true }).fill(email);
  await page.getByLabel('Age', { exact: true }).fill('41');
  await page.getByLabel('Gender').selectOption('F');
  await page.getByLabel('Satisfaction (1–5)').fill('4');
  const row = page.getByTestId('item-row').first();
  await row.getByLabel('Item', { exact: true }).fill('printer paper');
  await row.getByLabel('Tags (comma-separated)').fill('office, stationary');
  await row.getByLabel('Price', { exact: true }).fill('12.50');
  await row.getByLabel('Quantity', { exact: true }).fill('3');
  await page.getByRole('button', { name: 'Add item' }).click();
  const second = page.getByTestId('item-row').nth(1);
  await second.getByLabel('Item', { exact: true }).fill('pens');
  await second.getByLabel('Price', { exact: true }).fill('0.99');
  await second.getByLabel('Quantity', { exact: true }).fill('10');
}

test('a worker filters, creates, edits with a validation error, and deletes a sale', async ({ page }) => {
  await demoSeeded();
  await login(page, DEMO.worker.username, DEMO.worker.password);
  await expect(page).toHaveURL(/\/worker$/);
  await hydrated(page);
  // A marker on window survives client-side navigation but not a page load.
  const markNoReload = () => page.evaluate(() => ((window as any).__noReload = true));
  const stillNoReload = async () => expect(await page.evaluate(() => (window as any).__noReload)).toBe(true);
  await markNoReload();

  // Filters live in the URL: back and forward keep them.
  await page.getByLabel('Store').selectOption('Denver');
  await page.getByLabel('Purchase method', { exact: true }).selectOption('Online');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page).toHaveURL(/store=Denver/);
  await expect(page).toHaveURL(/method=Online/);
  const [denver] = await query(
    "SELECT COUNT(*) AS n FROM sales WHERE store_location = 'Denver' AND purchase_method = 'Online'",
  );
  await expect(page.getByTestId('matching')).toHaveText(`${grouped(denver.n)} matching sales`);
  const stores = await page.locator('[data-testid=sales-table] tbody td:nth-child(2)').allTextContents();
  expect(new Set(stores)).toEqual(new Set(['Denver']));
  await page.getByRole('link', { name: 'Next →' }).click();
  await expect(page).toHaveURL(/page=2/);
  await page.goBack();
  await expect(page).not.toHaveURL(/page=2/);
  await expect(page).toHaveURL(/store=Denver/);
  await stillNoReload();
  await page.reload();
  await expect(page.getByLabel('Store')).toHaveValue('Denver');
  await shot(page, 'worker-dashboard');

  // Create: live total, then saved through the dual writer.
  const email = `e2e.${Date.now()}@example.com`;
  await hydrated(page);
  await markNoReload();
  await page.getByRole('link', { name: 'New sale' }).click();
  await fillSale(page, email);
  await expect(page.getByTestId('live-total')).toHaveText('$47.40');
  await page.getByRole('button', { name: 'Create sale' }).click();
  await expect(page).toHaveURL(/\/worker\/sales\/[0-9a-f]{24}$/);
  await expect(page.getByRole('heading', { name: /version 1\)/ })).toBeVisible();
  const id = page.url().split('/').pop()!;
  await stillNoReload();
  const [created] = await query('SELECT total, version FROM sales WHERE id = ?', [id]);
  expect([String(created.total), Number(created.version)]).toEqual(['47.40', 1]);

  // Edit: a validation error shows inline and nothing is sent; then a valid save.
  await page.getByLabel('Age', { exact: true }).fill('200');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await expect(page.getByText('Please correct the highlighted fields.')).toBeVisible();
  await expect(page.locator('#customer_age-error')).toBeVisible();
  await shot(page, 'worker-validation');
  await page.getByLabel('Age', { exact: true }).fill('42');
  await page.getByTestId('item-row').nth(1).getByRole('button', { name: /Remove/ }).click();
  await expect(page.getByTestId('live-total')).toHaveText('$37.50');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await expect(page.getByRole('heading', { name: /version 2\)/ })).toBeVisible();
  await expect(page.getByTestId('saved')).toHaveText('Saved in both stores.');
  const [edited] = await query('SELECT total, customer_age, version FROM sales WHERE id = ?', [id]);
  expect([String(edited.total), Number(edited.customer_age), Number(edited.version)]).toEqual(['37.50', 42, 2]);

  // Delete, after confirming.
  await page.goto(`/worker?q=${encodeURIComponent(email)}`);
  await hydrated(page);
  const row = page.locator(`tr[data-sale-id="${id}"]`);
  await row.getByRole('button', { name: 'Delete' }).click();
  await row.getByRole('button', { name: 'Yes, delete' }).click();
  await expect(row).toHaveCount(0);
  expect((await query('SELECT COUNT(*) AS n FROM sales WHERE id = ?', [id]))[0].n).toBe(0);
});

async function workerPage(browser: Browser): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await login(page, DEMO.worker.username, DEMO.worker.password);
  await expect(page).toHaveURL(/\/worker$/);
  return page;
}

test('a version conflict between two editors offers to reload', async ({ browser }) => {
  await demoSeeded();
  const [sale] = await query('SELECT id, version FROM sales ORDER BY sale_date DESC LIMIT 1');
  const first = await workerPage(browser);
  const second = await workerPage(browser);
  for (const p of [first, second]) {
    await p.goto(`/worker/sales/${sale.id}`);
    await hydrated(p);
    await expect(p.getByRole('heading', { name: new RegExp(`version ${sale.version}\\)`) })).toBeVisible();
  }
  await first.getByLabel('Age', { exact: true }).fill('33');
  await first.getByRole('button', { name: 'Save changes' }).click();
  await expect(first.getByRole('heading', { name: new RegExp(`version ${Number(sale.version) + 1}\\)`) })).toBeVisible();

  await second.getByLabel('Age', { exact: true }).fill('55');
  await second.getByRole('button', { name: 'Save changes' }).click();
  await expect(second.getByTestId('conflict')).toContainText('changed by someone else');
  await shot(second, 'worker-conflict');
  await second.getByRole('button', { name: 'Reload the latest version' }).click();
  await expect(second.getByRole('heading', { name: new RegExp(`version ${Number(sale.version) + 1}\\)`) })).toBeVisible();
  await expect(second.getByLabel('Age', { exact: true })).toHaveValue('33');
});

/** A relative change in tenths of a percent, rounded half to even as the server's decimals are. */
function percentChange(now: string, before: string): string {
  const cents = (v: string) => BigInt(Math.round(Number(v) * 100));
  const [a, b] = [cents(now), cents(before)];
  const num = (a - b) * 1000n;
  let q = num / b;
  const r = num % b;
  const twice = 2n * (r < 0n ? -r : r);
  if (twice > b || (twice === b && q % 2n !== 0n)) q += num < 0n ? -1n : 1n;
  const sign = q > 0n ? '+' : q < 0n ? '-' : '±';
  const abs = q < 0n ? -q : q;
  return q === 0n ? '±0%' : `${sign}${abs / 10n}.${abs % 10n}%`;
}

test('a manager sees KPIs that match the database, in context, and drills down to the sales behind a bar', async ({ page }) => {
  await demoSeeded();
  await login(page, DEMO.manager.username, DEMO.manager.password);
  await expect(page).toHaveURL(/\/management$/);
  await hydrated(page);
  const [all] = await query(
    'SELECT COUNT(*) AS n, SUM(total) AS revenue, SUM(coupon_used) AS coupons FROM sales',
  );
  await expect(page.getByTestId('kpi-sales')).toHaveText(grouped(all.n));
  await expect(page.getByTestId('kpi-revenue')).toHaveText(money(String(all.revenue)));
  // All time has no period of the same length before it.
  await expect(page.getByTestId('kpi-revenue-change')).toHaveCount(0);

  // A date range, kept in the URL, compared with the 365 days before it.
  await page.getByLabel('From', { exact: true }).fill('2015-01-01');
  await page.getByLabel('To', { exact: true }).fill('2015-12-31');
  await page.getByRole('button', { name: 'Show', exact: true }).click();
  await expect(page).toHaveURL(/from=2015-01-01/);
  const year = async (y: number, where = '', args: unknown[] = []) =>
    (
      await query(
        `SELECT COUNT(*) AS n, SUM(total) AS revenue FROM sales WHERE sale_date >= '${y}-01-01' AND sale_date < '${y + 1}-01-01' ${where}`,
        args,
      )
    )[0];
  const [y2015, y2014] = [await year(2015), await year(2014)];
  await expect(page.getByTestId('kpi-sales')).toHaveText(grouped(y2015.n));
  await expect(page.getByTestId('kpi-revenue')).toHaveText(money(String(y2015.revenue)));
  await expect(page.getByTestId('kpi-revenue-change')).toHaveText(
    new RegExp(`${percentChange(y2015.revenue, y2014.revenue).replace('+', '\\+')} vs previous period$`),
  );
  // A year is drawn week by week.
  await expect(page.getByRole('list', { name: 'Revenue by week' })).toBeVisible();

  // Charts are interactive after hydration: a bar's figures for the pointer...
  const stores = page.locator('figure', { hasText: 'Revenue by store' });
  await stores.locator('g.bar').first().hover();
  await expect(stores.locator('.readout')).toContainText('$');
  // ...and for the keyboard: the chart is one tab stop, the arrow keys walk its bars.
  const byStore = await query(
    "SELECT store_location AS store, SUM(total) AS revenue, COUNT(*) AS n FROM sales WHERE sale_date >= '2015-01-01' AND sale_date < '2016-01-01' GROUP BY 1 ORDER BY 2 DESC, 1",
  );
  const figures = (r: any) => `${r.store}: ${money(String(r.revenue))} · ${grouped(r.n)} sales`;
  const plot = stores.getByRole('list', { name: 'Revenue by store' });
  await plot.focus();
  await page.keyboard.press('ArrowDown');
  await expect(stores.locator('.readout')).toHaveText(figures(byStore[0]));
  await page.keyboard.press('ArrowDown');
  await expect(stores.locator('.readout')).toHaveText(figures(byStore[1]));
  await page.keyboard.press('End');
  await expect(stores.locator('.readout')).toHaveText(figures(byStore[byStore.length - 1]));
  await page.keyboard.press('Tab');
  await expect(page.locator('figure', { hasText: 'Sales by purchase method' }).getByRole('button', { name: 'Show as table' })).toBeFocused();
  // The same figures as a table.
  await stores.getByRole('button', { name: 'Show as table' }).click();
  const rows = stores.getByRole('table').getByRole('row');
  await expect(rows).toHaveCount(byStore.length + 1);
  await expect(rows.nth(1)).toHaveText(`${byStore[0].store}${money(String(byStore[0].revenue))} · ${grouped(byStore[0].n)} sales`);
  await stores.getByRole('button', { name: 'Show as table' }).click();
  await expect(page.getByTestId('replication')).toBeVisible();
  await shot(page, 'management-dashboard');

  // One store and one purchase method, kept in the URL.
  const store = (await page.getByLabel('Store', { exact: true }).locator('option').nth(1).textContent())!.trim();
  await page.getByLabel('Store', { exact: true }).selectOption(store);
  await page.getByLabel('Purchase method', { exact: true }).selectOption('Online');
  await page.getByRole('button', { name: 'Show', exact: true }).click();
  await expect(page).toHaveURL(/method=Online/);
  expect(new URL(page.url()).searchParams.get('store')).toBe(store);
  const narrowed = await year(2015, 'AND store_location = ? AND purchase_method = ?', [store, 'Online']);
  await expect(page.getByTestId('kpi-sales')).toHaveText(grouped(narrowed.n));
  await expect(page.getByTestId('kpi-revenue')).toHaveText(money(String(narrowed.revenue)));

  // The store's bar opens the worker's table with the same filters.
  await stores.getByRole('link').first().click();
  await expect(page).toHaveURL(/\/worker\?/);
  const params = new URL(page.url()).searchParams;
  expect([params.get('store'), params.get('method'), params.get('from'), params.get('to')]).toEqual([
    store,
    'Online',
    '2015-01-01',
    '2015-12-31',
  ]);
  await expect(page.getByTestId('matching')).toHaveText(`${grouped(narrowed.n)} matching sales`);

  await page.goto('/management');
  await page.setViewportSize({ width: 360, height: 800 });
  await hydrated(page);
  // On a phone every chart's text still reads at 11 px or more, as drawn.
  const drawn = await page.locator('figure svg text').evaluateAll((texts) =>
    texts
      .filter((t) => t.getBoundingClientRect().width > 0)
      .map((t) => parseFloat(getComputedStyle(t).fontSize) * ((t as SVGGraphicsElement).getScreenCTM()?.a ?? 1)),
  );
  expect(drawn.length).toBeGreaterThan(20);
  expect(Math.min(...drawn)).toBeGreaterThanOrEqual(11);
  // Nothing sticks out sideways.
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
  await shot(page, 'management-360px');
  await page.locator('figure', { hasText: 'Revenue by store' }).screenshot({ path: 'output/chart-360px.png' });

  // Printed, the page gives the figures without the controls.
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.emulateMedia({ media: 'print' });
  await expect(page.getByRole('banner')).toBeHidden();
  await expect(page.getByRole('form', { name: 'Analytics filters' })).toBeHidden();
  await expect(page.getByRole('button', { name: 'Show as table' }).first()).toBeHidden();
  await expect(page.getByTestId('replication')).toBeHidden();
  await expect(page.getByTestId('kpi-revenue')).toBeVisible();
  await expect(page.getByRole('list', { name: 'Revenue by store' })).toBeVisible();
  await page.pdf({ path: 'output/management.pdf' });
  await page.emulateMedia({ media: 'screen' });
});
