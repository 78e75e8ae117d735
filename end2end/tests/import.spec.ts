import { DEMO, expect, hydrated, login, query, test, unique } from './helpers';

/** One sale in MongoDB Extended JSON, as `server import` reads it. */
function saleLine(email: string, i: number): string {
  return JSON.stringify({
    saleDate: { $date: `2016-05-${String(1 + (i % 28)).padStart(2, '0')}T10:30:00.000Z` },
    items: [{ name: 'pens', tags: ['office'], price: { $numberDecimal: `${1 + i}.50` }, quantity: 2 }],
    storeLocation: 'Denver',
    customer: { gender: 'F', age: 30, email, satisfaction: 4 },
    couponUsed: false,
    purchaseMethod: 'Online',
  });
}

test('a worker checks a file, sees its rejected line, then imports a clean one and watches it to the end', async ({ page }) => {
  await login(page, DEMO.worker.username, DEMO.worker.password);
  await hydrated(page);
  await page.getByRole('link', { name: 'Import', exact: true }).click();
  await expect(page).toHaveURL(/\/imports$/);
  await expect(page.getByRole('heading', { name: 'Import sales' })).toBeVisible();

  // The wrong kind of file: refused with its reason, nothing stored.
  await page.getByLabel(/^File/).setInputFiles({ name: 'photo.png', mimeType: 'image/png', buffer: Buffer.from('PNG') });
  await page.getByRole('button', { name: 'Check the file' }).click();
  await expect(page.getByTestId('upload-error')).toContainText('MongoDB Extended JSON');

  // A file with one bad line: checked, the line and reason shown, nothing to import.
  const email = `${unique('imp')}@example.com`;
  const lines = Array.from({ length: 30 }, (_, i) => saleLine(email, i));
  const broken = [...lines];
  broken[1] = broken[1].replace('"quantity":2', '"quantity":"two"');
  await page.getByLabel(/^File/).setInputFiles({ name: 'sales.json', mimeType: 'application/json', buffer: Buffer.from(broken.join('\n')) });
  await page.getByRole('button', { name: 'Check the file' }).click();
  await expect(page).toHaveURL(/\/imports\/\d+$/);
  await expect(page.getByTestId('import-rejected')).toHaveText('1');
  await expect(page.getByTestId('rejections')).toContainText('line 2');
  await expect(page.getByRole('button', { name: /^Import \d+ sales$/ })).toHaveCount(0);
  const [none] = await query('SELECT COUNT(*) AS n FROM sales WHERE customer_email = ?', [email]);
  expect(Number(none.n)).toBe(0);

  // The corrected file: 30 new sales, imported on confirmation, followed to the end.
  await page.goto('/imports');
  await hydrated(page);
  await page.getByLabel(/^File/).setInputFiles({ name: 'sales.json', mimeType: 'application/json', buffer: Buffer.from(lines.join('\n')) });
  await page.getByRole('button', { name: 'Check the file' }).click();
  await expect(page).toHaveURL(/\/imports\/\d+$/);
  await hydrated(page);
  await expect(page.getByTestId('import-new')).toHaveText('30');
  await page.getByRole('button', { name: 'Import 30 sales' }).click();
  await expect(page.getByTestId('import-state')).toHaveText('Imported', { timeout: 30_000 });
  await expect(page.getByTestId('import-progress')).toContainText('100%');
  await expect(page.locator('progress')).toHaveAttribute('value', '100');
  const [all] = await query('SELECT COUNT(*) AS n FROM sales WHERE customer_email = ?', [email]);
  expect(Number(all.n)).toBe(30);
  await page.screenshot({ path: 'output/import-done.png', fullPage: true });
});
