// The editor as a new user drives it, with the mouse, against the real
// server and real QEMU (TCG): create a lab, drag two VMs and a bridge from
// the palette, draw both links, give addresses, save, start, watch both
// turn running (on a second page too), ping from the CLI, export, import
// the export as a new lab, stop, delete. Then: live edits between pages,
// a stale save refused, and the web surface refusing foreign origins.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { startServer, launchBrowser, openApp, graphOf, root, screenshotDir, tinyImage, bin, minivmIn, auth } from './harness.mjs';

let server;
let browser;
const minivm = (...args) => minivmIn(server.stateDir, ...args);

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  tinyImage(server.stateDir);
});

after(async () => {
  for (const lab of ['drawn', 'drawn-copy', 'drawn-twin', 'drawn-renamed']) {
    try { minivm('down', lab, '--cleanup'); } catch (_) { /* not there */ }
  }
  await browser?.close();
  await server?.stop();
});

async function dropFromPalette(page, kind, x, y) {
  await page.dragAndDrop(`[data-palette="${kind}"]`, '.canvas', { targetPosition: { x, y } });
}

async function drawLink(page, from, to) {
  const a = await page.evaluate((id) => window.__minivmGraph.pagePosition(id), from);
  const b = await page.evaluate((id) => window.__minivmGraph.pagePosition(id), to);
  await page.mouse.move(a.x, a.y);
  await page.mouse.down();
  await page.mouse.move((a.x + b.x) / 2, (a.y + b.y) / 2, { steps: 5 });
  await page.mouse.move(b.x, b.y, { steps: 5 });
  await page.mouse.up();
}

async function clickNode(page, id) {
  const p = await page.evaluate((i) => window.__minivmGraph.pagePosition(i), id);
  await page.mouse.click(p.x, p.y);
}

async function waitState(page, vm, state, timeout = 180_000) {
  try {
    // Done when the VM gets there, or at once when an error is shown.
    await page.waitForFunction(
      ([v, s]) => window.__minivmGraph?.state(v) === s || document.querySelector('.banner.error'),
      [vm, state],
      { timeout },
    );
    if (await page.evaluate(([v, s]) => window.__minivmGraph?.state(v) !== s, [vm, state])) throw new Error('an error is shown');
  } catch (e) {
    const seen = await page.evaluate((v) => ({
      state: window.__minivmGraph?.state(v),
      status: document.querySelector('.status-text')?.innerText,
      error: document.querySelector('.banner.error')?.innerText,
    }), vm);
    throw new Error(`${vm} is not ${state}: ${JSON.stringify(seen)}`, { cause: e });
  }
}

test('draw a lab with the mouse, run it, export, import, stop, delete', { timeout: 600_000 }, async () => {
  const { page, errors } = await openApp(browser, server.url);
  await page.fill('.lab-name', 'drawn');
  await page.click('.new-lab');
  assert.deepEqual(await graphOf(page, 'drawn'), { vms: 0, bridges: 0, links: 0 });

  await dropFromPalette(page, 'vm', 150, 120);
  await dropFromPalette(page, 'vm', 450, 120);
  await dropFromPalette(page, 'bridge', 300, 320);
  assert.deepEqual(await graphOf(page, 'drawn'), { vms: 2, bridges: 1, links: 0 });

  await page.click('.draw-links');
  await drawLink(page, 'vm:vm1', 'net:net1');
  await drawLink(page, 'vm:vm2', 'net:net1');
  await page.click('.draw-links');
  assert.deepEqual(await graphOf(page, 'drawn'), { vms: 2, bridges: 1, links: 2 });

  for (const [vm, addr] of [['vm1', '10.1.0.11/24'], ['vm2', '10.1.0.12/24']]) {
    await clickNode(page, `vm:${vm}`);
    await page.waitForSelector(`.vm-props[data-vm="${vm}"]`);
    await page.fill('.vm-props .nic-address', addr);
    await page.press('.vm-props .nic-address', 'Tab');
  }
  // A wrong value shows its error beside the field, with validate's words.
  await clickNode(page, 'vm:vm1');
  await page.waitForSelector('.vm-props[data-vm="vm1"]');
  await page.fill('.vm-props .vm-memory', '1');
  await page.press('.vm-props .vm-memory', 'Tab');
  const fieldError = await page.locator('.vm-props .field-error[data-path="nodes[0].memory_mib"]').innerText();
  assert.match(fieldError, /out of range/);
  // Ctrl+Z on the canvas undoes it (in a text field it stays the field's own).
  await page.focus('.canvas');
  await page.keyboard.press('Control+z');
  await page.waitForSelector('.vm-props .field-error', { state: 'detached' });
  await page.keyboard.press('Control+Shift+z');
  await page.waitForSelector('.vm-props .field-error');
  await page.click('.undo');
  await page.waitForSelector('.vm-props .field-error', { state: 'detached' });
  // vm2 restarts by itself when it crashes.
  await clickNode(page, 'vm:vm2');
  await page.selectOption('.vm-props[data-vm="vm2"] .vm-restart', 'on-failure');

  await page.click('.save');
  await page.waitForFunction(() => document.querySelector('.save').innerText === 'Saved');
  await page.screenshot({ path: join(screenshotDir, 'editor-drawn.png') });

  const watcher = await openApp(browser, `${server.url}/?lab=drawn`);
  assert.deepEqual(await graphOf(watcher.page, 'drawn'), { vms: 2, bridges: 1, links: 2 });

  await page.click('.start-lab');
  for (const p of [page, watcher.page]) {
    await waitState(p, 'vm1', 'running');
    await waitState(p, 'vm2', 'running');
  }
  await page.screenshot({ path: join(screenshotDir, 'editor-running.png') });
  const ping = minivm('exec', 'drawn', 'vm1', '--', 'ping', '-c', '1', '-W', '5', '10.1.0.12');
  assert.match(ping, /1 packets received/);

  // vm2's QEMU killed -9: shown crashed with its last console lines, then
  // started again by its restart policy (after a 1 s backoff).
  const pidOf = (vm) => JSON.parse(minivm('status', 'drawn', '--json'))[0].vms.find((v) => v.name === vm).pid;
  const killed = pidOf('vm2');
  process.kill(killed, 'SIGKILL');
  await page.waitForSelector('.banner.error .error-text');
  assert.match(await page.locator('.banner.error .error-text').innerText(), /vm2 crashed\. Its last console lines:\n.*minivm: ready vm2/s);
  await page.click('.banner.error button');
  await page.waitForFunction(() => window.__minivmGraph.state('vm2') === 'starting', null, { timeout: 30_000 });
  await waitState(page, 'vm2', 'running');
  assert.notEqual(pidOf('vm2'), killed);
  assert.match(await page.locator('.status-text').innerText(), /vm2/);

  // Deleting a lab whose VMs run is refused.
  page.once('dialog', (d) => d.accept());
  await page.click('.delete-lab');
  assert.match(await page.locator('.lab-manager pre.error').innerText(), /while VMs run/);

  const [download] = await Promise.all([page.waitForEvent('download'), page.click('.export')]);
  const exported = readFileSync(await download.path(), 'utf8');
  const stored = readFileSync(join(server.stateDir, 'labs', 'drawn', 'topology.json'), 'utf8');
  assert.deepEqual(JSON.parse(exported), JSON.parse(stored));
  assert.equal(JSON.parse(stored).nodes.find((n) => n.name === 'vm2').restart, 'on-failure');
  // The export is a file `minivm` itself accepts as it is.
  minivm('validate', await download.path());

  await page.click('.import summary');
  await page.fill('.lab-name', 'drawn-copy');
  await page.fill('.import-text', exported);
  await page.click('.import-lab');
  assert.deepEqual(await graphOf(page, 'drawn-copy'), { vms: 2, bridges: 1, links: 2 });

  await page.click('a[data-lab="drawn"]');
  await graphOf(page, 'drawn');
  // vm1 from its context menu (right click), then the rest of the lab.
  const p1 = await page.evaluate(() => window.__minivmGraph.pagePosition('vm:vm1'));
  await page.mouse.click(p1.x, p1.y, { button: 'right' });
  await page.click('.context-menu[data-vm="vm1"] .menu-stop');
  await waitState(page, 'vm1', 'stopped', 60_000);
  assert.equal(await page.evaluate(() => window.__minivmGraph.state('vm2')), 'running');
  await page.click('.stop-lab');
  await waitState(page, 'vm2', 'stopped', 60_000);

  // Duplicate and rename from the lab list; then delete (it asks first).
  await page.fill('.lab-name', 'drawn-twin');
  await page.click('.duplicate-lab');
  assert.deepEqual(await graphOf(page, 'drawn-twin'), { vms: 2, bridges: 1, links: 2 });
  await page.fill('.lab-name', 'drawn-renamed');
  await page.click('.rename-lab');
  assert.deepEqual(await graphOf(page, 'drawn-renamed'), { vms: 2, bridges: 1, links: 2 });
  await page.waitForFunction(() => !document.querySelector('a[data-lab="drawn-twin"]'));
  await page.click('a[data-lab="drawn"]');
  await graphOf(page, 'drawn');
  page.on('dialog', (d) => d.accept());
  await page.click('.delete-lab');
  await page.waitForFunction(() => !document.querySelector('a[data-lab="drawn"]'));
  assert.ok(!execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).includes('minivm-drawn '));
  // The refused delete is the one failed request this page may show.
  // It is answered 409 Conflict.
  const refused = errors.filter((e) => /^409 .*\/api\/delete_lab$/.test(e)).length;
  assert.equal(refused, 1, errors.join('\n'));
  const console409 = errors.filter((e) => /status of 409/.test(e)).length;
  assert.ok(console409 <= refused);
  assert.deepEqual(errors.filter((e) => !/delete_lab|status of 409/.test(e)), []);
  await watcher.page.close();
  await page.close();
});

test('a second page sees edits live; a stale save is refused', async () => {
  const a = await openApp(browser, `${server.url}/?lab=triangle`);
  const b = await openApp(browser, `${server.url}/?lab=triangle`);
  await graphOf(a.page, 'triangle');
  await graphOf(b.page, 'triangle');
  await b.page.waitForSelector('body[data-events="connected"]');

  await dropFromPalette(a.page, 'vm', 500, 300);
  await a.page.click('.save');
  await a.page.waitForFunction(() => document.querySelector('.save').innerText === 'Saved');
  await b.page.waitForFunction(() => window.__minivmGraph.counts().vms === 4, null, { timeout: 10_000 });

  // Both edit; A saves first; B's save names an old revision and is refused.
  // (Only the page in front gets animation frames, which mouse actions wait
  // for: B draws, A edits a field and saves through the DOM.)
  await b.page.bringToFront();
  await dropFromPalette(b.page, 'bridge', 100, 300);
  await a.page.fill('.vm-props .vm-memory', '144');
  await a.page.press('.vm-props .vm-memory', 'Tab');
  await a.page.$eval('.save', (el) => el.click());
  await a.page.waitForFunction(() => document.querySelector('.save').innerText === 'Saved');
  await b.page.waitForSelector('.banner.stale');
  await b.page.$eval('.save', (el) => el.click());
  await b.page.waitForSelector('.banner.error .error-text');
  const err = await b.page.locator('.banner.error .error-text').innerText();
  assert.match(err, /changed elsewhere/);
  await b.page.screenshot({ path: join(screenshotDir, 'stale-save.png') });
  assert.deepEqual(a.errors, []);
  // The refused save is the one failed request B may show.
  assert.deepEqual(b.errors.filter((e) => !/save_lab|status of 409/.test(e)), []);
  assert.ok(b.errors.some((e) => /^409 .*\/api\/save_lab$/.test(e)), b.errors.join('\n'));
  await a.page.close();
  await b.page.close();
});

function raw(path, headers, method = 'GET') {
  const u = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method, headers }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve(res.statusCode);
    });
    req.on('error', reject);
    req.end(method === 'POST' ? '' : undefined);
  });
}

test('foreign origins, hosts and websockets are refused', async () => {
  const host = new URL(server.url).host;
  // Every request carries the token here: what is refused is refused for
  // where it comes from (403), not for the missing token (401).
  const post = auth(server.url, { Host: host, 'Content-Type': 'application/x-www-form-urlencoded' });
  assert.equal(await raw('/api/list_labs', { ...post, Origin: server.url }, 'POST'), 200);
  assert.equal(await raw('/api/list_labs', { Host: host, 'Content-Type': 'application/x-www-form-urlencoded', Origin: server.url }, 'POST'), 401, 'without the token');
  assert.equal(await raw('/api/list_labs', { ...post, Origin: 'http://evil.example' }, 'POST'), 403);
  assert.equal(await raw('/', auth(server.url, { Host: 'evil.example' })), 403, 'DNS rebinding: a foreign Host');
  const ws = { 'x-minivm-token': server.token, Host: host, Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' };
  assert.equal(await raw('/ws/events', { ...ws, Origin: server.url }), 101);
  assert.equal(await raw('/ws/events', { ...ws, Origin: 'http://evil.example' }), 403);
  // The console websocket follows the same rules (refused before it looks for the VM).
  assert.equal(await raw('/ws/console/triangle/vm1', { ...ws, Origin: 'http://evil.example' }), 403);
  assert.equal(await raw('/ws/console/triangle/vm1', { ...ws, Host: 'evil.example' }), 403);
  assert.equal(await raw('/ws/console/triangle/vm1', { ...ws, Origin: server.url }), 409, 'same origin: reaches the handler, the VM is not running');
});
