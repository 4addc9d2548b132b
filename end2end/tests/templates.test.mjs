// A lab made from a template with the mouse: the gallery shows each
// template with a picture of its lab; "lan" with its address plan changed
// becomes a lab, starts, and its own tests pass in the Tests panel, each
// shown as it ends. A test that cannot hold fails with its output and its
// VM highlighted on the canvas. The drawing exports as a PNG of its drawn
// size and an SVG that names every node. KubeVirt downloads the lab as
// the manifests `minivm export --format kubevirt` writes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { openApp, graphOf, startServer, launchBrowser, tinyImage, minivmIn } from './harness.mjs';

const LAB = 'tpl-e2e';
let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  tinyImage(server.stateDir);
});

after(async () => {
  try { minivmIn(server.stateDir, 'down', LAB, '--cleanup'); } catch (_) { /* never made */ }
  await browser?.close();
  await server?.stop();
});

const summary = (page, text) =>
  page.waitForFunction((t) => document.querySelector('.tests-summary')?.textContent === t, text, { timeout: 180_000 });

test('a lab from a template starts and passes its tests; a failing one is shown and highlighted', { timeout: 600_000 }, async () => {
  const { page, errors } = await openApp(browser, `${server.url}/`);
  await page.fill('.lab-name', LAB);
  await page.click('details.templates > summary');
  const card = '.template-card[data-template="lan"]';
  await page.waitForSelector(card);
  // Every built-in template is there, each with a picture naming its VMs.
  for (const t of ['lan', 'router', 'star', 'ospf-triangle', 'bgp', 'ospf-ring']) {
    await page.waitForSelector(`.template-card[data-template="${t}"] .template-picture svg`);
  }
  const names = await page.$$eval(`${card} .template-picture svg text`, (ts) => ts.map((t) => t.textContent));
  assert.deepEqual(names.sort(), ['h1', 'h2', 'lan']);
  await page.fill(`${card} .template-param[data-param="net"]`, '10.74.0.0/16');
  await page.press(`${card} .template-param[data-param="net"]`, 'Tab');
  await page.click(`${card} .create-from-template`);
  await page.waitForURL(`**/?lab=${LAB}`);
  assert.deepEqual(await graphOf(page, LAB), { vms: 2, bridges: 1, links: 2 });
  // The stored lab carries the template's tests and the changed plan.
  const mermaid = minivmIn(server.stateDir, 'graph', LAB);
  assert.match(mermaid, /eth0 10\.74\.1\.1\/24/);

  await page.click('.start-lab');
  await page.waitForFunction(() => ['h1', 'h2'].every((v) => window.__minivmGraph.state(v) === 'running'), null, { timeout: 180_000 });
  await page.click('.tests-open');
  await page.waitForSelector('.test-row[data-test="h1 reaches h2"]');
  await page.click('.run-tests');
  await summary(page, '2 of 2 passed');
  assert.equal(await page.$$eval('.test-row[data-state="passed"]', (r) => r.length), 2);

  // A test that cannot hold: the output did not have "zebra".
  await page.click('.add-exec-test');
  const row = '.test-row:nth-child(3)';
  await page.fill(`${row} .test-vm`, 'h1');
  await page.press(`${row} .test-vm`, 'Tab');
  await page.fill(`${row} .test-stdout`, 'zebra');
  await page.press(`${row} .test-stdout`, 'Tab');
  await page.click('.save');
  await page.waitForSelector('.save:has-text("Saved")');
  await page.click('.run-tests');
  await summary(page, '2 of 3 passed');
  assert.equal(await page.getAttribute(row, 'data-state'), 'failed');
  assert.match(await page.textContent(`${row} .test-output`), /expected exit 0 with "zebra" in the output[\s\S]*h1/);
  const lit = await page.evaluate(() => window.__minivmGraph.highlighted());
  assert.deepEqual(lit, ['net:lan', 'nic:h1:0', 'vm:h1']);
  assert.deepEqual(errors, []);
  await page.close();
});

test('the drawing exports as a PNG of its drawn size and an SVG naming every node', { timeout: 120_000 }, async () => {
  const { page, errors } = await openApp(browser, `${server.url}/?lab=${LAB}`);
  await graphOf(page, LAB);
  const [png] = await Promise.all([page.waitForEvent('download'), page.click('.export-png')]);
  assert.equal(png.suggestedFilename(), `${LAB}.png`);
  const bytes = readFileSync(await png.path());
  assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.equal(bytes.subarray(12, 16).toString('latin1'), 'IHDR');
  const w = bytes.readUInt32BE(16);
  const h = bytes.readUInt32BE(20);
  const drawn = await page.evaluate(() => window.__minivmGraph.pngSize());
  assert.ok(Math.abs(w - drawn.w) <= 2 && Math.abs(h - drawn.h) <= 2, `${w}x${h} against ${drawn.w}x${drawn.h}`);

  const [svg] = await Promise.all([page.waitForEvent('download'), page.click('.export-svg')]);
  assert.equal(svg.suggestedFilename(), `${LAB}.svg`);
  const text = readFileSync(await svg.path(), 'utf8');
  assert.match(text, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  for (const name of ['h1', 'h2', 'lan']) assert.ok(text.includes(`>${name}</text>`), name);
  assert.deepEqual(errors, []);
  await page.close();
});

test('a lab saved as a template is in the gallery; a VM saved as a node template is dragged onto another lab, renamed, exported, deleted and imported', { timeout: 180_000 }, async () => {
  const { page, errors } = await openApp(browser, `${server.url}/?lab=${LAB}`);
  await graphOf(page, LAB);
  // The lab saved as a template of the user's: in the gallery with the rest.
  page.once('dialog', (d) => d.accept('my-lan'));
  await page.click('.save-as-template');
  await page.waitForFunction(() => document.querySelector('.status-text')?.textContent === 'saved as template my-lan');
  await page.click('details.templates > summary');
  await page.waitForSelector('.template-card[data-template="my-lan"] .template-picture svg');
  // The built-in presets are in the palette.
  await page.waitForSelector('.palette-item[data-palette="tpl:host"]');
  await page.waitForSelector('.palette-item[data-palette="tpl:frr-router"]');
  const p = await page.evaluate(() => window.__minivmGraph.pagePosition('vm:h1'));
  await page.mouse.click(p.x, p.y);
  await page.click('.vm-props .save-node-template > summary');
  await page.fill('.vm-props .node-template-name', 'edge-host');
  await page.selectOption('.vm-props .node-template-kind', 'server');
  await page.click('.vm-props .save-node-template-button');
  await page.waitForSelector('.palette-item[data-palette="tpl:edge-host"]');

  // Another lab: the template dragged onto its canvas is a server VM.
  await page.fill('.lab-name', 'tpl-e2e-other');
  await page.click('.new-lab');
  await page.waitForURL('**/?lab=tpl-e2e-other');
  await graphOf(page, 'tpl-e2e-other');
  await page.waitForSelector('.palette-item[data-palette="tpl:edge-host"]');
  await page.dragAndDrop('.palette-item[data-palette="tpl:edge-host"]', '.canvas', { targetPosition: { x: 200, y: 150 } });
  await page.waitForFunction(() => window.__minivmGraph.counts().vms === 1);
  assert.equal(await page.evaluate(() => window.__minivmGraph.device('vm1')), 'server');
  await page.click('.save');
  await page.waitForSelector('.save:has-text("Saved")');

  // Renamed, exported, deleted, imported back.
  page.once('dialog', (d) => d.accept('core-host'));
  await page.click('.palette-tpl[data-template="edge-host"] .rename-tpl');
  await page.waitForSelector('.palette-item[data-palette="tpl:core-host"]');
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('.palette-tpl[data-template="core-host"] .export-tpl')]);
  const exported = JSON.parse(readFileSync(await dl.path(), 'utf8'));
  assert.equal(exported.name, 'core-host');
  assert.equal(exported.kind, 'server');
  page.once('dialog', (d) => d.accept());
  await page.click('.palette-tpl[data-template="core-host"] .delete-tpl');
  await page.waitForSelector('.palette-tpl[data-template="core-host"]', { state: 'detached' });
  await page.setInputFiles('.import-tpl input', await dl.path());
  await page.waitForSelector('.palette-item[data-palette="tpl:core-host"]');
  assert.deepEqual(errors, []);
  await page.close();
});

test('KubeVirt downloads the saved lab as manifests, the same text the CLI exports', { timeout: 120_000 }, async () => {
  const { page, errors } = await openApp(browser, `${server.url}/?lab=router`);
  await graphOf(page, 'router');
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('.export-kubevirt')]);
  assert.equal(dl.suggestedFilename(), 'router-kubevirt.yaml');
  const text = readFileSync(await dl.path(), 'utf8');
  assert.equal(text, minivmIn(server.stateDir, 'export', 'router', '--format', 'kubevirt'));
  assert.equal((text.match(/^kind: VirtualMachine$/gm) || []).length, 3);
  assert.match(text, /^# not carried: capture/m);
  await page.waitForFunction(() => /exported \d+ manifests for KubeVirt to router-kubevirt\.yaml/.test(document.querySelector('.status-text')?.textContent ?? ''));
  assert.deepEqual(errors, []);
  await page.close();
});
