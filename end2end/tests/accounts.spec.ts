import { test, expect } from '@playwright/test';
import { DEMO, PASSWORD, hydrated, login, loginReturnsToGuardedPage, logout, register, unique } from './helpers';

test('a new customer registers, logs out and logs back in', async ({ page }) => {
  const username = unique('cust');
  await register(page, username, 'Customer');
  await expect(page).toHaveURL(/\/customer$/);
  await expect(page.getByRole('heading', { name: 'My purchases' })).toBeVisible();
  await expect(page.getByRole('link', { name: new RegExp(username) })).toBeVisible();

  await logout(page);
  await login(page, username, PASSWORD);
  await expect(page).toHaveURL(/\/customer$/);
  await page.screenshot({ path: 'output/customer-new-account.png', fullPage: true });
});

test('registration shows the shared validation messages inline before submit', async ({ page }) => {
  await page.goto('/register');
  await hydrated(page);
  await page.getByLabel('Username').fill('x');
  await page.getByLabel('Email').click();
  await expect(page.getByText('Username must be 3 to 32 characters')).toBeVisible();
  await page.getByLabel('Password', { exact: true }).fill('short');
  await page.getByLabel('Confirm password').click();
  await expect(page.getByText('Password must be at least 12 characters')).toBeVisible();
});

test('a technical worker stays pending until a senior manager approves', async ({ browser }) => {
  const worker = await browser.newPage();
  const username = unique('tech');
  await register(worker, username, 'Technical worker');
  await expect(worker).toHaveURL(/\/awaiting-approval$/);
  await expect(worker.getByTestId('awaiting-approval')).toContainText('awaiting approval');
  await worker.goto('/worker');
  await expect(worker).toHaveURL(/\/awaiting-approval$/);

  const manager = await browser.newPage();
  await login(manager, DEMO.manager.username, DEMO.manager.password);
  await expect(manager).toHaveURL(/\/management$/);
  await manager.getByRole('link', { name: 'Users' }).first().click();
  await expect(manager).toHaveURL(/\/management\/users$/);
  await manager.getByLabel('Search').fill(username);
  const row = manager.locator(`tr[data-username="${username}"]`);
  await expect(row).toContainText('pending');
  await row.getByRole('button', { name: 'Approve' }).click();
  await expect(row).toContainText('active');
  await expect(manager.getByTestId('audit')).toContainText('approved');
  await manager.screenshot({ path: 'output/user-admin.png', fullPage: true });

  await worker.goto('/dashboard');
  await expect(worker).toHaveURL(/\/worker$/);
  await expect(worker.getByRole('heading', { name: 'Sales', exact: true })).toBeVisible();
});

test('a customer who tries /management is refused', async ({ page }) => {
  await login(page, DEMO.customer.username, DEMO.customer.password);
  await expect(page).toHaveURL(/\/customer$/);
  const response = await page.goto('/management');
  expect(response?.status()).toBe(403);
  await expect(page.getByTestId('forbidden')).toBeVisible();
  await expect(page.getByRole('link', { name: 'Users' })).toHaveCount(0);
});

test('an anonymous visitor is sent to login and back afterwards', async ({ page }) => {
  await loginReturnsToGuardedPage(page);
});
