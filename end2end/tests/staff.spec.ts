import { APIRequestContext, Browser, Page } from '@playwright/test';
import {
  DEMO, PASSWORD, apiLogin, confirmEmail, expect, hydrated, login, logout, nextCode, query, register, setupCode,
  submitLogin, test, totp, unique,
} from './helpers';

/** A technical worker, registered, confirmed and approved; returns the page they use. */
async function approvedWorker(browser: Browser, baseURL: string): Promise<{ page: Page; username: string }> {
  const page = await browser.newPage();
  const username = unique('tech');
  await register(page, username, 'Technical worker');
  await confirmEmail(page, username);
  const context = await browser.newContext({ baseURL });
  await apiLogin(context.request, DEMO.manager.username, DEMO.manager.password, baseURL);
  const [{ id }] = await query('SELECT id FROM users WHERE username = ?', [username]);
  const decided = await context.request.post('/api/admin/users/decide', {
    form: { id: String(id), approve: 'true' },
    headers: { Origin: baseURL },
  });
  expect(decided.status(), await decided.text()).toBe(200);
  await context.close();
  return { page, username };
}

/** Sets up the second factor through the API, as the profile page does; returns the secret. */
async function enrolByApi(request: APIRequestContext, username: string, baseURL: string): Promise<string> {
  const headers = { Origin: baseURL };
  expect((await request.post('/api/login', { form: { username, password: PASSWORD }, headers })).status()).toBe(200);
  const begun = await request.post('/api/two-factor/begin', { headers });
  expect(begun.status(), await begun.text()).toBe(200);
  const { secret } = await begun.json();
  const confirmed = await request.post('/api/two-factor/confirm', {
    form: { code: await nextCode(username, secret), mailed_code: await setupCode(username) },
    headers,
  });
  expect(confirmed.status(), await confirmed.text()).toBe(200);
  return secret;
}

test('a worker sets up two-factor authentication, then logs in with a code and with a recovery code', async ({
  browser,
  baseURL,
}) => {
  const { page, username } = await approvedWorker(browser, baseURL!);
  await login(page, username, PASSWORD, undefined);
  await expect(page).toHaveURL(/\/profile\/two-factor$/);
  await expect(page.getByTestId('two-factor-required')).toBeVisible();
  await hydrated(page);
  // The page's own questions to the server answer slowly, as on a phone: a refused code
  // must not re-draw the form under a user who is already typing the next one.
  await page.route('**/api/two-factor', async (route) => {
    await new Promise((r) => setTimeout(r, 300));
    await route.continue();
  });
  await page.getByRole('button', { name: 'Set up two-factor authentication' }).click();
  const secret = (await page.getByTestId('totp-secret').textContent())!.trim();
  await expect(page.getByRole('img', { name: 'QR code of the secret' }).locator('svg')).toBeVisible();
  // A wrong code first: refused, nothing set up.
  const wrong = totp(secret, Math.floor(Date.now() / 30_000) + 5);
  // The set-up also asks for the code mailed to the account's address.
  await page.getByLabel('The 8-digit code we mailed you').fill(await setupCode(username));
  await page.getByLabel('The 6-digit code the app shows').fill(wrong);
  await page.getByRole('button', { name: 'Confirm' }).click();
  await expect(page.getByText('That code is not right')).toBeVisible();
  await page.getByLabel('The 6-digit code the app shows').fill(await nextCode(username, secret));
  // The user reads the code back before confirming; whatever the page fetches meanwhile lands.
  await page.waitForTimeout(1_000);
  await expect(page.getByLabel('The 6-digit code the app shows')).not.toHaveValue('');
  await page.getByRole('button', { name: 'Confirm' }).click();
  const codes = page.getByTestId('recovery-codes').locator('code');
  await expect(codes).toHaveCount(10);
  const recovery = (await codes.first().textContent())!.trim();
  await page.screenshot({ path: 'output/two-factor-setup.png', fullPage: true });

  await page.goto('/worker');
  await expect(page.getByRole('heading', { name: 'Sales', exact: true })).toBeVisible();
  await logout(page);

  // With a code from the app.
  await login(page, username, PASSWORD, secret);
  await expect(page).toHaveURL(/\/worker$/);
  await logout(page);

  // With a recovery code, which then works no more.
  await page.goto('/login');
  await hydrated(page);
  await submitLogin(page, username, PASSWORD);
  await expect(page).toHaveURL(/\/login\/second-step/);
  await page.getByLabel('Code').fill(recovery);
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page).toHaveURL(/\/worker$/);
  await logout(page);
  await page.goto('/login');
  await hydrated(page);
  await submitLogin(page, username, PASSWORD);
  await expect(page).toHaveURL(/\/login\/second-step/);
  // Until the second step, the dashboard is out of reach.
  await page.goto('/worker');
  await expect(page).toHaveURL(/\/login\/second-step\?next=\/worker$/);
  await hydrated(page);
  await page.getByLabel('Code').fill(recovery);
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page.getByText('That code is not right, or was used already.')).toBeVisible();
});

/** Edits a sale through the API as the signed-in user of `request`: `change` alters its input. */
async function editSale(request: APIRequestContext, baseURL: string, id: string, change: (input: any) => void) {
  const headers = { Origin: baseURL };
  const loaded = await request.post('/api/sales/get', { form: { id }, headers });
  expect(loaded.status(), await loaded.text()).toBe(200);
  const { sale, token } = await loaded.json();
  const input = {
    sale_date: sale.sale_date,
    items: sale.items.map((i: any) => ({ name: i.name, tags: i.tags, price: String(i.price), quantity: String(i.quantity) })),
    store_location: sale.store_location,
    customer_gender: sale.customer.gender,
    customer_age: String(sale.customer.age),
    customer_email: sale.customer.email,
    customer_satisfaction: String(sale.customer.satisfaction),
    coupon_used: sale.coupon_used,
    purchase_method: sale.purchase_method,
  };
  change(input);
  const saved = await request.post('/api/sales/update', {
    data: { token, id, version: sale.version, input },
    headers,
  });
  expect(saved.status(), await saved.text()).toBe(200);
  return saved.json();
}

test('a manager sees who changed a sale and how, also after it was deleted', async ({ browser, page, baseURL }) => {
  const [{ id, customer_age, customer_satisfaction }] = await query(
    'SELECT id, customer_age, customer_satisfaction FROM sales ORDER BY sale_date DESC LIMIT 1',
  );
  // Two workers edit it: the demo worker the age, a new one the satisfaction.
  const first = await browser.newContext({ baseURL });
  await apiLogin(first.request, DEMO.worker.username, DEMO.worker.password, baseURL!);
  const age = customer_age === 70 ? 69 : customer_age + 1;
  await editSale(first.request, baseURL!, id, (input) => (input.customer_age = String(age)));
  const { username } = await approvedWorker(browser, baseURL!);
  const second = await browser.newContext({ baseURL });
  await enrolByApi(second.request, username, baseURL!);
  const satisfaction = customer_satisfaction === 5 ? 1 : customer_satisfaction + 1;
  await editSale(second.request, baseURL!, id, (input) => (input.customer_satisfaction = String(satisfaction)));

  await login(page, DEMO.manager.username, DEMO.manager.password);
  await expect(page).toHaveURL(/\/management$/);
  await page.goto(`/worker/sales/${id}`);
  const entries = page.getByTestId('sale-history').getByTestId('history-entry');
  await expect(entries.first()).toContainText(`edited by ${username}`);
  await expect(entries.first()).toContainText(`Satisfaction${customer_satisfaction}${satisfaction}`);
  await expect(entries.nth(1)).toContainText('edited by demo.worker');
  await expect(entries.nth(1)).toContainText(`Customer age${customer_age}${age}`);
  await expect(entries.last()).toContainText(/imported by import|created by/);
  await page.screenshot({ path: 'output/sale-history.png', fullPage: true });

  // Deleted: the history stays, for senior managers only.
  const loaded = await (await second.request.post('/api/sales/get', { form: { id }, headers: { Origin: baseURL! } })).json();
  const deleted = await second.request.post('/api/sales/delete', {
    form: { token: '', id, version: String(loaded.sale.version) },
    headers: { Origin: baseURL! },
  });
  expect(deleted.status(), await deleted.text()).toBe(200);
  const refused = await first.request.post('/api/sales/history', { form: { id }, headers: { Origin: baseURL! } });
  expect(refused.status()).toBe(403);
  await page.goto(`/sales/${id}/history`);
  await expect(page.getByText('This sale was deleted; its history stays readable.')).toBeVisible();
  await expect(page.getByTestId('history-entry').first()).toContainText(`deleted by ${username}`);
  await first.close();
  await second.close();
});

test('a sensitive change asks for a code again once the login proved the second factor more than ten minutes ago', async ({
  page,
}) => {
  await login(page, DEMO.worker.username, DEMO.worker.password);
  // The login is now eleven minutes old, as a stolen session's would be.
  await query(
    `UPDATE user_sessions SET second_factor_at = UTC_TIMESTAMP(6) - INTERVAL 11 MINUTE
     WHERE user_id = (SELECT id FROM users WHERE username = ?)`,
    [DEMO.worker.username],
  );
  await page.goto('/profile');
  await hydrated(page);
  const form = page.getByRole('form', { name: 'Change email address' });
  await form.getByLabel('New email address').fill(`${unique('moved')}@example.com`);
  await form.getByLabel('Current password').fill(DEMO.worker.password);
  await form.getByRole('button', { name: 'Change address' }).click();
  await expect(form.getByText('this change needs one when you last gave one more than 10 minutes ago')).toBeVisible();

  await form.getByLabel('Code from your authenticator app').fill(await nextCode(DEMO.worker.username, DEMO.worker.secret));
  await form.getByRole('button', { name: 'Change address' }).click();
  await expect(page.getByText("Check the new address's inbox for the confirmation link.")).toBeVisible();
});
