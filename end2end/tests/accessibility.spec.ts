import { Page } from '@playwright/test';
import { test, expect } from './helpers';
import AxeBuilder from '@axe-core/playwright';
import { DEMO, hydrated, login, query } from './helpers';

// axe-core's WCAG 2.1 A and AA rules (labels, names, contrast, landmarks, ARIA use) on
// every page a role works with, at desktop and at the 360 px phone width.
const WCAG = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];

async function audit(page: Page, path: string) {
  await page.goto(path);
  await hydrated(page);
  // Loaded content, not the loading placeholders.
  await expect(page.getByText(/Loading|Checking…|Preparing/)).toHaveCount(0);
  const { violations } = await new AxeBuilder({ page }).withTags(WCAG).analyze();
  const found = violations.map((v) => ({
    rule: v.id,
    impact: v.impact,
    help: v.help,
    where: v.nodes.slice(0, 3).map((n) => n.target.join(' ')),
  }));
  expect(found, `${path} at ${page.viewportSize()?.width} px`).toEqual([]);
}

// `:sale` stands for the newest sale's id (its edit form and history).
const PAGES: { who: keyof typeof DEMO | null; paths: string[] }[] = [
  { who: null, paths: ['/', '/login', '/register', '/forgot-password', '/no-such-page'] },
  { who: 'customer', paths: ['/customer', '/profile', '/profile/two-factor'] },
  { who: 'worker', paths: ['/worker', '/worker/sales/new', '/worker/sales/:sale', '/imports', '/profile/two-factor'] },
  { who: 'manager', paths: ['/management', '/management/users', '/sales/:sale/history'] },
];

// The dark theme follows the system's setting (`prefers-color-scheme`): both themes at
// both widths.
const VIEWS: { width: number; scheme: 'light' | 'dark' }[] = [
  { width: 1280, scheme: 'light' },
  { width: 360, scheme: 'light' },
  { width: 1280, scheme: 'dark' },
  { width: 360, scheme: 'dark' },
];

for (const { width, scheme } of VIEWS) {
  for (const { who, paths } of PAGES) {
    test(`${who ?? 'anonymous'} pages pass the WCAG 2.1 AA checks at ${width} px, ${scheme}`, async ({ page }) => {
      await page.setViewportSize({ width, height: 900 });
      await page.emulateMedia({ colorScheme: scheme });
      if (who) {
        await login(page, DEMO[who].username, DEMO[who].password);
        await expect(page).not.toHaveURL(/\/login/);
      }
      const [newest] = await query('SELECT id FROM sales ORDER BY sale_date DESC LIMIT 1');
      for (const path of paths) {
        await audit(page, path.replace(':sale', newest?.id ?? 'none'));
      }
    });
  }
}
