import { ChildProcess, spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import path from 'node:path';
import { DEV_SITE } from '../playwright.dev.config';
import {
  DEMO,
  apiLogin,
  expect,
  hydrated,
  login,
  query,
  saleInput,
  servedScriptsResolveTheirChunks,
  test,
} from '../tests/helpers';

// The README's first command, as a developer runs it: `scripts/run` (install check,
// services, `cargo leptos watch`), here on a port and databases of its own.
const ROOT = path.resolve(__dirname, '../..');
const BASE = `http://${DEV_SITE}`;
const RELOAD_PORT = Number(process.env.PORTAL_DEV_RELOAD_PORT ?? 3201);

let run: ChildProcess | undefined;

async function answers(url: string): Promise<boolean> {
  try {
    return (await fetch(url)).ok;
  } catch {
    return false;
  }
}

test.beforeAll(async () => {
  // The first build under `cargo leptos watch` recompiles what reads LEPTOS_WATCH.
  test.setTimeout(25 * 60_000);
  const log = openSync(path.join(ROOT, 'end2end/output/run-command.log'), 'w');
  run = spawn(path.join(ROOT, 'scripts/run'), [], {
    cwd: ROOT,
    // Its own process group, so the watcher and the server it started stop together.
    detached: true,
    env: { ...process.env, LEPTOS_SITE_ADDR: DEV_SITE, LEPTOS_RELOAD_PORT: String(RELOAD_PORT) },
    stdio: ['ignore', log, log],
  });
  const exited = new Promise<never>((_, reject) =>
    run!.once('exit', (code) => reject(new Error(`scripts/run exited (${code}): see end2end/output/run-command.log`))),
  );
  const ready = expect
    .poll(() => answers(`${BASE}/healthz`), { timeout: 24 * 60_000, intervals: [2_000] })
    .toBe(true);
  await Promise.race([ready, exited]);
  // The demo seed runs beside the server's start.
  await expect
    .poll(async () => Number((await query('SELECT COUNT(*) AS n FROM sales'))[0].n), { timeout: 120_000 })
    .toBeGreaterThanOrEqual(4990);
});

test.afterAll(async () => {
  if (!run?.pid) return;
  const stopped = new Promise((resolve) => run!.once('exit', resolve));
  process.kill(-run.pid, 'SIGINT');
  const late = setTimeout(() => process.kill(-run!.pid!, 'SIGKILL'), 15_000);
  await stopped;
  clearTimeout(late);
});

test('the page scripts/run serves hydrates, opens its reload socket and follows an edit without reloading', async ({
  page,
  playwright,
}) => {
  const sockets: string[] = [];
  page.on('websocket', (socket) => sockets.push(socket.url()));
  await login(page, DEMO.worker.username, DEMO.worker.password);
  await page.goto('/worker');
  await hydrated(page);
  await expect(page.getByTestId('live-status')).toHaveAttribute('data-state', 'live');
  expect(sockets.some((url) => url.endsWith(`:${RELOAD_PORT}/live_reload`)), `reload socket in ${sockets}`).toBe(true);
  await page.evaluate(() => ((window as any).sameDocument = true));

  const row = page.locator('[data-testid=sales-table] tbody tr').first();
  const id = (await row.getAttribute('data-sale-id'))!;
  const [sale] = await query("SELECT DATE_FORMAT(sale_date, '%Y-%m-%dT%H:%i') AS date, version FROM sales WHERE id = ?", [
    id,
  ]);

  // Edited through the API by another user, as a script or another tab would.
  const api = await playwright.request.newContext({ baseURL: BASE });
  await apiLogin(api, DEMO.manager.username, DEMO.manager.password, BASE);
  const updated = await api.post('/api/sales/update', {
    data: { token: '', id, version: Number(sale.version), input: saleInput('dev.path@example.com', sale.date, 'Dev Path Store') },
    headers: { Origin: BASE },
  });
  expect(updated.status(), await updated.text()).toBe(200);
  await api.dispose();

  const edited = page.locator(`tr[data-sale-id="${id}"]`);
  await expect(edited).toHaveAttribute('data-version', String(Number(sale.version) + 1), { timeout: 2_000 });
  await expect(edited.locator('td').nth(1)).toHaveText('Dev Path Store');
  expect(await page.evaluate(() => (window as any).sameDocument), 'no page load happened').toBe(true);
});

test('no script the run command serves imports a chunk the build left unresolved', async ({ request }) => {
  await servedScriptsResolveTheirChunks(request);
});
