// The connectivity matrix in the browser on the router example: every pair
// passes; after `ip link set eth0 down` in h1 (typed into the VM's command
// box), exactly the pairs through h1 fail, as `minivm check` says, and the
// links on their paths turn red.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, launchBrowser, openApp, graphOf, root, screenshotDir, tinyImage, bin, minivmIn } from './harness.mjs';

let server;
let browser;
const minivm = (...args) => minivmIn(server.stateDir, ...args);
const LAB = 'check-e2e';

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  tinyImage(server.stateDir);
  const file = join(server.stateDir, 'lab.yaml');
  writeFileSync(file, readFileSync(join(root, 'examples', 'router.yaml'), 'utf8').replace('name: router\n', `name: ${LAB}\n`));
  minivm('up', '-f', file);
});

after(async () => {
  try { minivm('down', LAB, '--cleanup'); } catch (_) { /* already gone */ }
  await browser?.close();
  await server?.stop();
});

const failedCells = (page) => page.$$eval('.matrix td.fail', (tds) => tds.map((td) => `${td.dataset.from}->${td.dataset.to}`).sort());

test('the matrix shows every pair, then exactly the pairs a downed NIC breaks', { timeout: 300_000 }, async () => {
  const { page, errors } = await openApp(browser, `${server.url}/?lab=${LAB}`);
  await graphOf(page, LAB);
  await page.click('.check-lab');
  await page.waitForSelector('.matrix');
  assert.equal(await page.locator('.matrix td.pass').count(), 6);
  assert.deepEqual(await failedCells(page), []);

  // h1's command box: take its only NIC down.
  const p = await page.evaluate(() => window.__minivmGraph.pagePosition('vm:h1'));
  await page.mouse.click(p.x, p.y);
  await page.fill('.vm-props .exec-input', 'ip link set eth0 down');
  await page.click('.vm-props .exec-run');
  await page.waitForSelector('.vm-props .exec-output[data-exit="0"]');

  await page.click('.check-lab');
  await page.waitForFunction(() => document.querySelectorAll('.matrix td.fail').length > 0, null, { timeout: 60_000 });
  const expected = ['h1->h2', 'h1->r1', 'h2->h1', 'r1->h1'];
  assert.deepEqual(await failedCells(page), expected);
  assert.deepEqual(await page.evaluate(() => window.__minivmGraph.failing()), ['nic:h1:0', 'nic:h2:0', 'nic:r1:0']);
  await page.screenshot({ path: join(screenshotDir, 'check-matrix.png') });

  // The CLI says the same.
  const cli = spawnSync(bin, ['--state-dir', server.stateDir, 'check', LAB, '--json'], { encoding: 'utf8' });
  assert.equal(cli.status, 1);
  const failed = JSON.parse(cli.stdout).filter((o) => !o.ok).map((o) => `${o.from}->${o.to}`).sort();
  assert.deepEqual(failed, expected);
  assert.deepEqual(errors, []);
  await page.close();
});
