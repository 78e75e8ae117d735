import { test, expect } from '@playwright/test';
import { DEMO } from './helpers';

// The server renders every page and the forms post to the server functions directly,
// so the basics work before the WASM bundle arrives, or without it.
test.use({ javaScriptEnabled: false });

test('without JavaScript, logging in (wrongly, then rightly) and out still works', async ({ page }) => {
  await page.goto('/login');
  await page.getByLabel('Username').fill(DEMO.customer.username);
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page).toHaveURL(/\/login/);
  await expect(page.getByRole('alert')).toHaveText('Invalid username or password');

  await page.getByLabel('Username').fill(DEMO.customer.username);
  await page.getByLabel('Password').fill(DEMO.customer.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page).toHaveURL(/\/customer$/);
  await expect(page.getByRole('heading', { name: 'My purchases' })).toBeVisible();

  await page.getByRole('button', { name: 'Log out' }).click();
  await expect(page).toHaveURL(/\/login$/);
  await page.goto('/customer');
  await expect(page).toHaveURL(/\/login\?next=/);
});

test('without JavaScript, registration shows the server\'s validation messages', async ({ page }) => {
  await page.goto('/register');
  await page.getByLabel('Username').fill('x');
  await page.getByLabel('Email').fill('x@example.com');
  await page.getByLabel('Password', { exact: true }).fill('Quiet-Marble-Orchard-58');
  await page.getByLabel('Confirm password').fill('Quiet-Marble-Orchard-58');
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).toHaveURL(/\/register/);
  await expect(page.getByText('Username must be 3 to 32 characters')).toBeVisible();
});

test('without JavaScript, the sales filters still apply', async ({ page }) => {
  await page.goto('/login');
  await page.getByLabel('Username').fill(DEMO.worker.username);
  await page.getByLabel('Password').fill(DEMO.worker.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page).toHaveURL(/\/worker$/);
  await page.getByLabel('Store').selectOption('Denver');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page).toHaveURL(/store=Denver/);
  const stores = await page.locator('[data-testid=sales-table] tbody td:nth-child(2)').allTextContents();
  expect(stores.length).toBeGreaterThan(0);
  expect(new Set(stores)).toEqual(new Set(['Denver']));
});
