// The walking skeleton as a new user sees it: the page lists the seeded
// example labs and draws the selected one in a cytoscape canvas.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, launchBrowser, openApp, graphOf, root, screenshotDir } from './harness.mjs';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the lab list shows the seeded examples', async () => {
  const { page, errors } = await openApp(browser, server.url);
  const labs = await page.locator('.lab-list a').evaluateAll((as) => as.map((a) => a.dataset.lab));
  assert.deepEqual(labs, ['router', 'triangle']);
  assert.deepEqual(errors, []);
  await page.close();
});

test('selecting a lab draws its VMs, bridges and links', async () => {
  const { page, errors } = await openApp(browser, server.url);
  await page.click('a[data-lab="triangle"]');
  assert.deepEqual(await graphOf(page, 'triangle'), { vms: 3, bridges: 1, links: 3 });
  await page.click('a[data-lab="router"]');
  assert.deepEqual(await graphOf(page, 'router'), { vms: 3, bridges: 2, links: 4 });
  assert.equal(await page.locator('.lab-list li.selected a').getAttribute('data-lab'), 'router');
  assert.equal(await page.locator('.lab-title').innerText(), 'router');
  assert.equal(await page.locator('.problems-count').innerText(), 'valid');
  await page.screenshot({ path: join(screenshotDir, 'router.png') });
  assert.deepEqual(errors, []);
  await page.close();
});

test('a lab named in the URL is drawn on first load', async () => {
  const { page } = await openApp(browser, `${server.url}/?lab=triangle`);
  assert.deepEqual(await graphOf(page, 'triangle'), { vms: 3, bridges: 1, links: 3 });
  await page.close();
});

test('the JSON Schema is served as committed', async () => {
  const res = await fetch(`${server.url}/schema/topology.v1.json`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /schema\+json/);
  const committed = readFileSync(join(root, 'topology', 'schema', 'topology.v1.json'), 'utf8');
  assert.deepEqual(await res.json(), JSON.parse(committed));
});
