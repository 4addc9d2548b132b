// The walking skeleton as a new user sees it: the page lists the seeded
// example labs and draws the selected one in a cytoscape canvas.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, launchBrowser, openApp, graphOf, root, screenshotDir, minivmIn } from './harness.mjs';

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
  assert.deepEqual(labs.filter((l) => l !== 'clab-browser'), ['ospf', 'router', 'triangle']);
  assert.deepEqual(errors, []);
  await page.close();
});

test('the OSPF example opens with its routers\' FRR files and both images offered', async () => {
  const { page, errors } = await openApp(browser, server.url);
  await page.click('a[data-lab="ospf"]');
  assert.deepEqual(await graphOf(page, 'ospf'), { vms: 6, bridges: 6, links: 12 });
  assert.equal(await page.locator('.problems-count').innerText(), 'valid');
  const p = await page.evaluate(() => window.__minivmGraph.pagePosition('vm:r1'));
  await page.mouse.click(p.x, p.y);
  await page.waitForSelector('.vm-props .file-row[data-file="1"]');
  const paths = await page.locator('.vm-props .file-row .file-path').evaluateAll((es) => es.map((e) => e.value));
  assert.deepEqual(paths, ['/etc/frr/daemons', '/etc/frr/frr.conf']);
  const conf = await page.inputValue('.vm-props .file-row[data-file="1"] .file-content');
  assert.match(conf, /router ospf\n ospf router-id 10\.255\.0\.1/);
  const images = await page.locator('.vm-props select.vm-image option').evaluateAll((os) => os.map((o) => o.value));
  assert.ok(images.includes('tiny') && images.includes('frr'), images.join(','));
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

test('a containerlab folder imported in the browser: the lab, its files and the report', async () => {
  const { page, errors } = await openApp(browser, server.url);
  await page.click('.import summary');
  await page.fill('.lab-name', 'clab-browser');
  await page.setInputFiles('.import-folder', join(root, 'examples', 'clab', 'frr-triangle'));
  await page.waitForFunction(() => document.querySelector('.import-text')?.value.includes('topology:'));
  await page.click('.import-lab');
  assert.deepEqual(await graphOf(page, 'clab-browser'), { vms: 6, bridges: 6, links: 12 });
  assert.match(await page.locator('.lab-manager pre.ok').innerText(), /report: topology\.nodes\.Router1: named "router1" here/);
  assert.equal(await page.locator('.problems-count').innerText(), 'valid');
  // The startup config came from the folder's router1/frr.conf.
  const stored = JSON.parse(readFileSync(join(server.stateDir, 'labs', 'clab-browser', 'topology.json'), 'utf8'));
  const r1 = stored.nodes.find((n) => n.name === 'router1');
  assert.match(r1.files.find((f) => f.path === '/etc/frr/frr.conf').content, /router-id 10\.10\.10\.1/);
  assert.equal(stored.mgmt.subnet, '172.20.30.0/24');
  // The same lab as `minivm import` makes of the folder (which the CLI test
  // brings up: OSPF converges, every pair passes).
  const cliState = mkdtempSync(join(tmpdir(), 'minivm-clab-'));
  try {
    minivmIn(cliState, 'import', join(root, 'examples', 'clab', 'frr-triangle', 'frr-triangle.clab.yml'), '--name', 'clab-browser');
    const cli = JSON.parse(readFileSync(join(cliState, 'labs', 'clab-browser', 'topology.json'), 'utf8'));
    assert.deepEqual(stored, cli);
  } finally {
    rmSync(cliState, { recursive: true, force: true });
  }
  assert.deepEqual(errors, []);
  await page.close();
});

test('the JSON Schema is served as committed', async () => {
  const res = await fetch(`${server.url}/schema/topology.v1.json`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /schema\+json/);
  const committed = readFileSync(join(root, 'topology', 'schema', 'topology.v1.json'), 'utf8');
  assert.deepEqual(await res.json(), JSON.parse(committed));
});
