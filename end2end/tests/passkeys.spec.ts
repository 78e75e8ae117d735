import { CDPSession, Page } from '@playwright/test';
import { DEMO, expect, hydrated, login, logout, mailTo, query, test } from './helpers';

// Passkeys in Chromium, with the DevTools protocol's virtual authenticator standing in
// for a phone or a security key: it keeps discoverable credentials and verifies its
// user (a fingerprint, a PIN) without asking.
//
// Browsers bind a passkey to a domain name, never to an IP address, so these journeys
// open the portal at `localhost` (the same server as the suite's `127.0.0.1`).
const AT_IP = process.env.PORTAL_BASE_URL ?? 'http://127.0.0.1:3000';
const AT_NAME = AT_IP.replace('127.0.0.1', 'localhost');
test.use({ baseURL: AT_NAME });

async function virtualAuthenticator(page: Page): Promise<CDPSession> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return cdp;
}

async function addPasskey(page: Page, name: string, password: string) {
  await page.goto('/profile/two-factor');
  await hydrated(page);
  const form = page.getByRole('form', { name: 'Add a passkey' });
  await form.getByLabel('Name').fill(name);
  await form.getByLabel('Current password').fill(password);
  await form.getByRole('button', { name: 'Add a passkey' }).click();
  await expect(form.getByRole('status')).toHaveText(`Passkey \u201c${name}\u201d added.`);
  await expect(page.getByTestId('passkey-list')).toContainText(name);
}

/** Signs in from the login page a logout has just left the browser on, as a person
 * would (no reload in between). */
async function signInWithPasskey(page: Page) {
  await expect(page).toHaveURL(/\/login$/);
  await hydrated(page);
  await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
}

async function emailOfAccount(username: string): Promise<string> {
  const [row] = await query<{ email: string }>('SELECT email FROM users WHERE username = ?', [username]);
  return row.email;
}

const HOMES = { customer: /\/customer$/, worker: /\/worker$/, manager: /\/management$/ } as const;

for (const role of ['customer', 'worker', 'manager'] as const) {
  test(`a ${role} adds a passkey, signs in with it alone, and removes it`, async ({ page }) => {
    const who = DEMO[role];
    const cdp = await virtualAuthenticator(page);
    const name = `Laptop ${Date.now().toString(36)}`;
    await login(page, who.username, who.password);
    await expect(page).toHaveURL(HOMES[role]);
    await addPasskey(page, name, who.password);
    await mailTo(await emailOfAccount(who.username), 'A passkey was added to your account');

    // No username, no password, no code: the passkey is both factors.
    await logout(page);
    await signInWithPasskey(page);
    await expect(page).toHaveURL(HOMES[role]);
    const [audit] = await query<{ detail: string }>(
      "SELECT a.detail FROM auth_audit a JOIN users u ON u.id = a.user_id WHERE u.username = ? AND a.event = 'login_succeeded' ORDER BY a.id DESC LIMIT 1",
      [who.username],
    );
    expect(audit.detail).toBe('passkey');
    // The login counts as a fresh second factor: a sensitive change needs no code now.
    await page.goto('/profile/two-factor');
    await hydrated(page);

    // Removing it asks for the password (and, past ten minutes, a code).
    const remove = page.getByRole('form', { name: 'Remove a passkey' });
    await remove.getByLabel('Passkey').selectOption({ label: name });
    await remove.getByLabel('Current password').fill('not the password');
    await remove.getByRole('button', { name: 'Remove' }).click();
    await expect(remove.getByText('Current password is not correct')).toBeVisible();
    await remove.getByLabel('Current password').fill(who.password);
    await remove.getByRole('button', { name: 'Remove' }).click();
    await expect(page.getByText('Passkey removed: it no longer signs in.')).toBeVisible();
    await expect(page.getByTestId('passkeys')).not.toContainText(name);
    await mailTo(await emailOfAccount(who.username), 'A passkey was removed from your account');

    // The authenticator still holds the key; the portal no longer accepts it.
    await logout(page);
    await signInWithPasskey(page);
    await expect(page.getByRole('alert')).toContainText('This passkey cannot sign in here');
    await expect(page).toHaveURL(/\/login$/);
    await cdp.detach();
  });
}

test.describe('at the IP address', () => {
  test.use({ baseURL: AT_IP });

  test('the profile says where passkeys work', async ({ page }) => {
    await login(page, DEMO.customer.username, DEMO.customer.password);
    await expect(page).toHaveURL(HOMES.customer);
    await page.goto('/profile/two-factor');
    await hydrated(page);
    await expect(page.getByTestId('passkeys')).toContainText(`Passkeys for this portal work at ${AT_NAME}`);
  });
});
