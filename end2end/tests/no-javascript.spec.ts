import {
  DEMO, PASSWORD, apiLogin, emailOf, expect, linkIn, loginReturnsToGuardedPage, mailTo, query, secondStep,
  submitLogin, test, unique,
} from './helpers';

// The server renders every page and the forms post to the server functions directly,
// so the basics work before the WASM bundle arrives, or without it.
test.use({ javaScriptEnabled: false });

test('without JavaScript, logging in (wrongly, then rightly) and out still works', async ({ page }) => {
  await page.goto('/login');
  await submitLogin(page, DEMO.customer.username, 'not-the-password');
  await expect(page).toHaveURL(/\/login/);
  await expect(page.getByRole('alert')).toHaveText('Invalid username or password');

  await submitLogin(page, DEMO.customer.username, DEMO.customer.password);
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

test('without JavaScript, a login sends the visitor back to the page they asked for', async ({ page }) => {
  await loginReturnsToGuardedPage(page);
});

test('without JavaScript, the sales filters still apply and stay filled in', async ({ page }) => {
  await page.goto('/login');
  await submitLogin(page, DEMO.worker.username, DEMO.worker.password);
  await secondStep(page, DEMO.worker.username, DEMO.worker.secret);
  await expect(page).toHaveURL(/\/worker$/);
  await page.getByLabel('Store').selectOption('Denver');
  await page.getByLabel('From').fill('2016-01-01');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page).toHaveURL(/store=Denver/);
  await expect(page.getByLabel('From')).toHaveValue('2016-01-01');
  const stores = await page.locator('[data-testid=sales-table] tbody td:nth-child(2)').allTextContents();
  expect(stores.length).toBeGreaterThan(0);
  expect(new Set(stores)).toEqual(new Set(['Denver']));

  // The edit form arrives filled in: nothing depends on hydration to show the sale.
  const [sale] = await query(
    'SELECT id, customer_age, customer_email, coupon_used FROM sales ORDER BY sale_date DESC LIMIT 1',
  );
  await page.goto(`/worker/sales/${sale.id}`);
  await expect(page.getByLabel('Age', { exact: true })).toHaveValue(String(sale.customer_age));
  await expect(page.getByLabel('Email')).toHaveValue(sale.customer_email);
  await expect(page.getByLabel('Coupon used')).toBeChecked({ checked: Boolean(sale.coupon_used) });
  await page.goBack();

  // Applying again (here with a search) keeps the date the page was showing.
  await page.getByLabel('Search', { exact: true }).fill('a');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page).toHaveURL(/q=a/);
  await expect(page).toHaveURL(/from=2016-01-01/);
});

test('without JavaScript, a mailed reset link sets a new password', async ({ page, playwright, baseURL }) => {
  // A customer, and a manager who has the link mailed to them (both through the API).
  const username = unique('reset');
  const extraHTTPHeaders = { Origin: baseURL! };
  const customer = await playwright.request.newContext({ baseURL, extraHTTPHeaders });
  const registered = await customer.post('/api/register', {
    form: { username, email: emailOf(username), password: PASSWORD, confirm_password: PASSWORD, role: 'customer' },
  });
  expect(registered.status()).toBe(200);
  const [{ id }] = await query('SELECT id FROM users WHERE username = ?', [username]);
  const manager = await playwright.request.newContext({ baseURL, extraHTTPHeaders });
  await apiLogin(manager, DEMO.manager.username, DEMO.manager.password, baseURL!);
  const issued = await manager.post('/api/admin/users/reset-link', { form: { id: String(id) } });
  expect(issued.status()).toBe(200);
  expect(await issued.text()).not.toContain('token');

  await page.goto(linkIn(await mailTo(emailOf(username), 'Reset your password'), '/reset-password'));
  await page.getByLabel('New password', { exact: true }).fill('Velvet-Compass-Rain-31');
  await page.getByLabel('Confirm new password').fill('Velvet-Compass-Rain-31');
  await page.getByRole('button', { name: 'Set password' }).click();
  await expect(page).toHaveURL(/\/login\?reset=done$/);
  await expect(page.getByRole('status')).toContainText('Your password was changed');
  await submitLogin(page, username, 'Velvet-Compass-Rain-31');
  await expect(page).toHaveURL(/\/customer$/);
});

test('without JavaScript, a buyer refuses a confirmation link someone else\'s account asked for', async ({ page, playwright, baseURL }) => {
  // Someone registers with a buyer's address, hoping the buyer confirms it.
  const squatter = unique('squat');
  const buyer = emailOf(unique('buyer'));
  const stranger = await playwright.request.newContext({ baseURL, extraHTTPHeaders: { Origin: baseURL! } });
  const registered = await stranger.post('/api/register', {
    form: { username: squatter, email: buyer, password: PASSWORD, confirm_password: PASSWORD, role: 'customer' },
  });
  expect(registered.status()).toBe(200);
  const mail = await mailTo(buyer, 'Confirm your email address');
  expect(mail.text).toContain(`"${squatter}"`);
  expect(mail.text).toContain('This is not my account');

  await page.goto(linkIn(mail, '/verify-email'));
  const pending = page.getByTestId('pending-address');
  await expect(pending).toContainText(buyer);
  await expect(pending).toContainText(squatter);
  await page.getByRole('button', { name: 'This is not my account' }).click();
  await expect(page).toHaveURL(/\/verify-email\?declined=1$/);
  await expect(page.getByTestId('email-declined')).toBeVisible();

  // The link is spent: it confirms nothing, for the squatter either.
  await page.goto(linkIn(mail, '/verify-email'));
  await expect(page.getByRole('alert')).toContainText('invalid, expired or already used');
  const [{ verified }] = await query('SELECT email_verified_at IS NOT NULL AS verified FROM users WHERE username = ?', [squatter]);
  expect(Number(verified)).toBe(0);
});
