import { APIRequestContext } from '@playwright/test';
import {
  DEMO, PASSWORD, apiLogin, confirmEmail, emailOf, expect, hydrated, linkIn, login, loginReturnsToGuardedPage,
  logout, mailTo, query, register, saleInput, submitLogin, test, unique,
} from './helpers';

/** A sale bought by `email`, recorded by the demo worker through the API. */
async function recordPurchase(request: APIRequestContext, baseURL: string, email: string) {
  const headers = { Origin: baseURL };
  await apiLogin(request, DEMO.worker.username, DEMO.worker.password, baseURL);
  const token = await (await request.post('/api/sales/token', { headers })).json();
  const created = await request.post('/api/sales/create', {
    headers,
    data: { token, input: saleInput(email) },
  });
  expect(created.status(), await created.text()).toBe(200);
}

test('a new customer confirms their address from the mail, sees and downloads their purchases, then closes the account', async ({
  page,
  request,
  baseURL,
}) => {
  const username = unique('cust');
  await recordPurchase(request, baseURL!, emailOf(username));
  await register(page, username, 'Customer');
  await expect(page.getByTestId('registered')).toContainText('Check your inbox');

  await login(page, username, PASSWORD);
  await expect(page).toHaveURL(/\/customer$/);
  await expect(page.getByTestId('confirm-email-first')).toBeVisible();
  await expect(page.getByTestId('purchases')).toHaveCount(0);

  await confirmEmail(page, username);
  await page.goto('/customer');
  await expect(page.getByTestId('kpi-count')).toHaveText('1');
  await expect(page.getByTestId('purchases')).toContainText('printer paper');
  await page.screenshot({ path: 'output/customer-new-account.png', fullPage: true });

  await logout(page);
  await login(page, username, PASSWORD);
  await expect(page).toHaveURL(/\/customer$/);

  // Their purchases as a file, item by item.
  await hydrated(page);
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: 'Download my purchases (CSV)' }).click(),
  ]);
  expect(download.suggestedFilename()).toBe('my-purchases.csv');
  const csv = await (await download.createReadStream()).toArray();
  const lines = Buffer.concat(csv).toString('utf8').trim().split('\r\n');
  expect(lines[0]).toMatch(/^sale_id,sale_date_utc,/);
  expect(lines.slice(1).join('\n')).toContain('printer paper');

  // Closing the account: a wrong password first changes nothing.
  await page.goto('/profile');
  await hydrated(page);
  const close = page.getByRole('form', { name: 'Close your account' });
  await close.getByLabel('Current password').fill('not-my-password');
  await close.getByLabel('I understand that my account is gone for good').check();
  await close.getByRole('button', { name: 'Close my account' }).click();
  await expect(close.getByText('Current password is not correct')).toBeVisible();
  await close.getByLabel('Current password').fill(PASSWORD);
  await close.getByRole('button', { name: 'Close my account' }).click();
  await expect(page).toHaveURL(/\/\?closed=1$/);
  await expect(page.getByTestId('account-closed')).toBeVisible();
  await expect(page.getByRole('link', { name: 'Log in' })).toBeVisible();
  const [row] = await query('SELECT status FROM users WHERE email = ?', [emailOf(username)]);
  expect(row).toBeUndefined();
  const [kept] = await query('SELECT COUNT(*) AS n FROM sales WHERE customer_email = ?', [emailOf(username)]);
  expect(Number(kept.n)).toBe(1);

  // The name and password lead nowhere now.
  await page.goto('/login');
  await hydrated(page);
  await submitLogin(page, username, PASSWORD);
  await expect(page.getByRole('alert')).toBeVisible();
  await expect(page).toHaveURL(/\/login/);
});

test('a forgotten password is reset from the mailed link', async ({ page }) => {
  const username = unique('forget');
  await register(page, username, 'Customer');
  await confirmEmail(page, username);

  await page.goto('/login');
  await hydrated(page);
  await page.getByRole('link', { name: 'Forgot password?' }).click();
  await expect(page).toHaveURL(/\/forgot-password$/);
  await page.getByLabel('Email').fill(emailOf(username));
  await page.getByRole('button', { name: 'Send me a link' }).click();
  await expect(page.getByTestId('reset-requested')).toBeVisible();

  const mail = await mailTo(emailOf(username), 'Reset your password');
  await page.goto(linkIn(mail, '/reset-password'));
  await hydrated(page);
  const fresh = 'Copper-Window-Meadow-31';
  await page.getByLabel('New password', { exact: true }).fill(fresh);
  await page.getByLabel('Confirm new password').fill(fresh);
  await page.getByRole('button', { name: 'Set password' }).click();
  await expect(page).toHaveURL(/\/login\?reset=done$/);
  await mailTo(emailOf(username), 'Your password was changed');

  await login(page, username, fresh);
  await expect(page).toHaveURL(/\/customer$/);
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

test('a technical worker confirms their address, then waits for a senior manager', async ({ browser }) => {
  const worker = await browser.newPage();
  const username = unique('tech');
  await register(worker, username, 'Technical worker');
  await expect(worker.getByTestId('registered')).toBeVisible();
  await confirmEmail(worker, username);
  await login(worker, username, PASSWORD);
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

  // Approved staff set up a second factor before their dashboard opens (staff.spec.ts).
  await worker.goto('/dashboard');
  await expect(worker).toHaveURL(/\/profile\/two-factor$/);
  await expect(worker.getByTestId('two-factor-required')).toBeVisible();
  await worker.goto('/worker');
  await expect(worker).toHaveURL(/\/profile\/two-factor$/);
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

test('a reset link a manager issues arrives in the user\'s inbox, not on the manager\'s screen', async ({
  page,
}) => {
  const username = unique('locked');
  await register(page, username, 'Customer');
  await confirmEmail(page, username);

  await login(page, DEMO.manager.username, DEMO.manager.password);
  await expect(page).toHaveURL(/\/management$/);
  await page.goto('/management/users');
  await hydrated(page);
  await page.getByLabel('Search').fill(username);
  const row = page.locator(`tr[data-username="${username}"]`);
  await row.getByRole('button', { name: 'Mail a reset link' }).click();
  await expect(page.getByTestId('reset-link')).toContainText("sent to the user's email address");
  await expect(page.locator('body')).not.toContainText('/reset-password?token=');

  const mail = await mailTo(emailOf(username), 'Reset your password');
  expect(linkIn(mail, '/reset-password')).toMatch(/^\/reset-password\?token=[0-9a-f]{64}$/);
});

test('user administration pages its list and searches it, in the URL', async ({ page }) => {
  const prefix = unique('listed');
  for (let i = 0; i < 60; i++) {
    await query(
      `INSERT INTO users (username, username_key, email, email_verified_at, password_hash, role, status, created_at)
       VALUES (?, ?, ?, UTC_TIMESTAMP(6), 'x', 'customer', 'active', UTC_TIMESTAMP(6))`,
      [`${prefix}.${i}`, `${prefix}.${i}`.toLowerCase(), `${prefix}.${i}@listed.example`.toLowerCase()],
    );
  }
  await login(page, DEMO.manager.username, DEMO.manager.password);
  await page.goto('/management/users');
  await hydrated(page);
  await page.getByLabel('Search').fill(prefix);
  await expect(page).toHaveURL(new RegExp(`q=${prefix}`, 'i'));
  await expect(page.getByTestId('users-matching')).toHaveText('60 users');
  await expect(page.getByTestId('page-info')).toHaveText('Page 1 of 2');
  await expect(page.getByTestId('users').locator('tbody tr')).toHaveCount(50);
  await page.getByRole('link', { name: 'Page 2', exact: true }).click();
  await expect(page).toHaveURL(/page=2/);
  await expect(page.getByTestId('users').locator('tbody tr')).toHaveCount(10);
  await page.reload();
  await hydrated(page);
  await expect(page.getByLabel('Search')).toHaveValue(prefix);
  await expect(page.getByTestId('page-info')).toHaveText('Page 2 of 2');
});
