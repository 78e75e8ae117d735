import { Page } from '@playwright/test';
import { DEMO, demoSeeded, expect, hydrated, login, test } from './helpers';

// The user guide's screenshots (docs/user-guide.md): each role's dashboard on the demo data, with the browser's
// clock fixed. `scripts/screenshots` writes them to docs/screenshots; the test run writes
// them under output/ (so a change that breaks the script fails the tests).
const DIR = process.env.PORTAL_SCREENSHOTS_DIR ?? 'output/screenshots';
const CLOCK = new Date('2026-12-07T09:30:00Z');
const YEAR = '/management?from=2016-01-01&to=2016-12-31';

/** One view of the page: `path` at `width` px, light or dark, as `file`.png. */
async function shoot(page: Page, path: string, file: string, width: number, scheme: 'light' | 'dark' = 'light') {
  await page.setViewportSize({ width, height: width < 600 ? 800 : 900 });
  await page.emulateMedia({ colorScheme: scheme });
  await page.goto(path);
  await hydrated(page);
  await expect(page.getByText(/Loading|Computing|Checking…/)).toHaveCount(0);
  await page.screenshot({ path: `${DIR}/${file}.png` });
}

test("the user guide's screenshots", async ({ browser }) => {
  test.setTimeout(180_000);
  await demoSeeded();
  const roles: [keyof typeof DEMO, (page: Page) => Promise<void>][] = [
    ['customer', (page) => shoot(page, '/customer', 'customer', 1280)],
    ['worker', (page) => shoot(page, '/worker', 'worker', 1280)],
    [
      'manager',
      async (page) => {
        await shoot(page, YEAR, 'management', 1280);
        await shoot(page, YEAR, 'management-360px', 360);
        await shoot(page, YEAR, 'management-dark', 1280, 'dark');
      },
    ],
  ];
  for (const [who, shots] of roles) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.clock.setFixedTime(CLOCK);
    await login(page, DEMO[who].username, DEMO[who].password);
    await expect(page).not.toHaveURL(/\/login/);
    await shots(page);
    await context.close();
  }
});
