import { Page } from '@playwright/test';
import { DEMO, demoSeeded, expect, hydrated, login, query, test } from './helpers';

/** The start of any word of the text, as the search box reads words. */
function hasWordStarting(text: string, word: string, separators: RegExp): boolean {
  const lower = text.toLowerCase();
  return [...lower].some((c, i) => (i === 0 || separators.test(lower[i - 1])) && !separators.test(c) && lower.startsWith(word, i));
}

async function search(page: Page, text: string) {
  await page.getByLabel('Search', { exact: true }).fill(text);
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page).toHaveURL(/[?&]q=/);
}

async function matching(page: Page): Promise<string> {
  return ((await page.getByTestId('matching').textContent()) ?? '').replace(' matching sales', '').replaceAll(',', '');
}

test('the sales table finds a sale by its id, an address word or an item, in one step', async ({ page }) => {
  await demoSeeded();
  await login(page, DEMO.worker.username, DEMO.worker.password);
  await expect(page).toHaveURL(/\/worker$/);
  await hydrated(page);
  const sales = await query<{ id: string; customer_email: string }>('SELECT id, customer_email FROM sales');
  const items = await query<{ sale_id: string; name: string }>('SELECT sale_id, name FROM sale_items');

  // The start of an id finds that sale.
  const target = sales[137];
  await search(page, target.id.slice(0, 10));
  await expect(page.locator(`tr[data-sale-id="${target.id}"]`)).toBeVisible();

  // A word in the middle of an address: the domain's first label.
  const word = target.customer_email.split('@')[1].split('.')[0];
  const byAddress = sales.filter((s) => hasWordStarting(s.customer_email, word, /[@.\-+_]/));
  await search(page, word);
  await expect.poll(() => matching(page)).toBe(String(byAddress.length));
  await expect(page.locator(`tr[data-sale-id="${target.id}"]`)).toBeVisible();

  // A word of an item's name, counted independently of the search's own tables.
  const paper = new Set(items.filter((i) => hasWordStarting(i.name, 'paper', /[\s-]/)).map((i) => i.sale_id));
  for (const s of sales) if (hasWordStarting(s.customer_email, 'paper', /[@.\-+_]/)) paper.add(s.id);
  await search(page, 'paper');
  await expect.poll(() => matching(page)).toBe(String(paper.size));

  // Letters inside a word find nothing.
  await search(page, target.customer_email.slice(1));
  await expect(page.getByText('No sales match these filters.')).toBeVisible();
});

test('every column sorts both ways, and pages are numbered, sized and reachable by number', async ({ page }) => {
  await demoSeeded();
  await login(page, DEMO.worker.username, DEMO.worker.password);
  await hydrated(page);
  const table = page.getByTestId('sales-table');
  const store = table.getByRole('columnheader', { name: /Store/ });
  await expect(store).toHaveAttribute('aria-sort', 'none');
  await expect(table.getByRole('columnheader', { name: /Date/ })).toHaveAttribute('aria-sort', 'descending');

  await store.getByRole('link').click();
  await expect(page).toHaveURL(/sort=store(_|%5F)asc/);
  await expect(store).toHaveAttribute('aria-sort', 'ascending');
  const ascending = await table.locator('tbody tr td:nth-child(2)').allTextContents();
  expect(ascending).toEqual([...ascending].sort((a, b) => a.localeCompare(b, 'en', { sensitivity: 'base' })));
  await store.getByRole('link').click();
  await expect(page).toHaveURL(/sort=store(_|%5F)desc/);
  await expect(store).toHaveAttribute('aria-sort', 'descending');
  const [{ s: last }] = await query<{ s: string }>('SELECT MAX(store_location) AS s FROM sales');
  await expect(table.locator('tbody tr').first().locator('td').nth(1)).toHaveText(last);

  const items = table.getByRole('columnheader', { name: /Items/ });
  await items.getByRole('link').click();
  await expect(items).toHaveAttribute('aria-sort', 'descending', { timeout: 10_000 });
  const [most] = await query<{ n: number }>('SELECT MAX(item_count) AS n FROM sales');
  await expect(table.locator('tbody tr').first().locator('td').nth(5)).toHaveText(String(most.n));

  // 50 rows a page; the order is kept.
  await page.getByLabel('Rows').selectOption('50');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page).toHaveURL(/size=50/);
  await expect(page).toHaveURL(/sort=items/);
  await expect(table.locator('tbody tr')).toHaveCount(50);
  const [{ n }] = await query<{ n: number }>('SELECT COUNT(*) AS n FROM sales');
  const pages = Math.ceil(Number(n) / 50);
  await expect(page.getByTestId('page-info')).toHaveText(`Page 1 of ${pages}`);

  // A numbered page, then a jump to one far away.
  await page.getByRole('link', { name: 'Page 2', exact: true }).click();
  await expect(page).toHaveURL(/page=2/);
  await expect(page.locator('.page-numbers [aria-current="page"]')).toHaveText('2');
  await page.getByLabel('Go to page').fill(String(pages - 1));
  await page.getByRole('button', { name: 'Go' }).click();
  await expect(page).toHaveURL(new RegExp(`page=${pages - 1}`));
  await expect(page.getByTestId('page-info')).toHaveText(`Page ${pages - 1} of ${pages}`);
  await expect(page).toHaveURL(/size=50/);
  await expect(table.locator('tbody tr')).toHaveCount(50);
});
