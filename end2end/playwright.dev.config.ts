import { defineConfig } from '@playwright/test';
import base from './playwright.config';

// The run command's path: `scripts/run` started by the journey itself, on a port and
// databases of its own (scripts/test sets them), so the page a developer first meets
// is tested as they meet it. Its first build can take minutes, hence the long timeout.
export const DEV_SITE = process.env.PORTAL_DEV_ADDR ?? '127.0.0.1:3200';

export default defineConfig({
  ...base,
  testDir: './dev',
  timeout: 120_000,
  use: { ...base.use, baseURL: `http://${DEV_SITE}` },
});
