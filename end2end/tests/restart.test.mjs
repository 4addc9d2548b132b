// Restarting `minivm serve` (SIGTERM, then kill -9) leaves running VMs
// alone; the new server reports them running within 1 s of starting, and
// an open page reconnects by itself and shows the state again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchBrowser, openApp, graphOf, root, tinyImage, bin, minivmIn, readStart, auth, tokenOf } from './harness.mjs';

const LAB = 'restart-e2e';
let stateDir;
let browser;
let server = null;
const minivm = (...args) => minivmIn(stateDir, ...args);

// Starts the server on `bind`; resolves with its URL once it listens.
function serve(bind) {
  const child = spawn(bin, ['serve', '--bind', bind, '--state-dir', stateDir], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, MINIVM_LOG: 'warn' },
  });
  const started = Date.now();
  const url = readStart(child).then((s) => s.url);
  return { child, started, url };
}

async function stateWithin(url, ms) {
  const t0 = Date.now();
  for (;;) {
    const res = await fetch(`${url}/api/get_lab`, {
      method: 'POST',
      headers: auth(url, { 'Content-Type': 'application/x-www-form-urlencoded' }),
      body: `name=${LAB}`,
    });
    if (res.ok) {
      const view = await res.json();
      if (view.states.vm1?.state === 'running') return Date.now() - t0;
    }
    if (Date.now() - t0 > ms) throw new Error(`vm1 not reported running within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (_) {
    return false;
  }
}

before(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'minivm-restart-'));
  chmodSync(stateDir, 0o755);
  browser = await launchBrowser();
  tinyImage(stateDir);
  const file = join(stateDir, 'lab.yaml');
  writeFileSync(file, `version: 1\nname: ${LAB}\ndefaults: {image: tiny}\nnodes:\n  - {name: vm1, position: {x: 100, y: 100}}\n`);
  minivm('up', '-f', file);
});

after(async () => {
  if (server && server.child.exitCode === null) server.child.kill('SIGKILL');
  try { minivm('down', LAB, '--cleanup'); } catch (_) { /* gone */ }
  await browser?.close();
  rmSync(stateDir, { recursive: true, force: true });
});

test('SIGTERM and kill -9 of the server leave VMs running; the page reconnects', { timeout: 180_000 }, async () => {
  server = serve('127.0.0.1:0');
  const url = await server.url;
  const bind = new URL(url).host;
  const pid = JSON.parse(minivm('status', LAB, '--json'))[0].vms[0].pid;
  const { page, errors } = await openApp(browser, `${url}/?lab=${LAB}`);
  await graphOf(page, LAB);
  await page.waitForFunction(() => window.__minivmGraph.state('vm1') === 'running' && document.body.dataset.events === 'connected');

  for (const signal of ['SIGTERM', 'SIGKILL']) {
    const exited = new Promise((r) => server.child.once('exit', r));
    server.child.kill(signal);
    await exited;
    await page.waitForFunction(() => document.body.dataset.events === 'disconnected');
    assert.ok(alive(pid), `the VM survives the server's ${signal}`);

    const before = tokenOf(url);
    server = serve(bind);
    await server.url;
    // The same token: the open page's cookie still opens the server.
    assert.equal(tokenOf(url), before, 'the token is kept across restarts');
    const ms = Date.now() - server.started;
    const after = await stateWithin(url, 1000);
    console.log(`after ${signal}: listening ${ms} ms after start; vm1 reported running ${after} ms later`);
    assert.ok(ms + after <= 1000 + 500, `reported within about 1 s of start (${ms} + ${after} ms)`);
    // The page reconnects by itself and still shows the VM running.
    await page.waitForFunction(() => document.body.dataset.events === 'connected', null, { timeout: 15_000 });
    await page.waitForFunction(() => window.__minivmGraph.state('vm1') === 'running');
    assert.equal(JSON.parse(minivm('status', LAB, '--json'))[0].vms[0].pid, pid, 'the same QEMU');
  }
  assert.deepEqual(errors.filter((e) => !/ERR_CONNECTION_REFUSED|WebSocket/.test(e)), []);
  await page.close();
});
