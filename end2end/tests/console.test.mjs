// A running VM's serial console in the browser: type into the serial
// shell and see the answer; a second page on the same console sees the
// same output (scrollback from boot on) and can type too; a reload brings
// the scrollback back; closing a console releases nothing; a QEMU killed
// -9 shows as crashed with its last console lines.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, launchBrowser, openApp, graphOf, root, screenshotDir, tinyImage, bin, minivmIn } from './harness.mjs';

let server;
let browser;
const minivm = (...args) => minivmIn(server.stateDir, ...args);
const LAB = 'console-e2e';

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  tinyImage(server.stateDir);
  const file = join(server.stateDir, 'lab.yaml');
  writeFileSync(file, `version: 1\nname: ${LAB}\ndefaults: {image: tiny}\nnodes:\n  - {name: vm1, position: {x: 200, y: 150}}\n`);
  // Started from the CLI: the server takes the console over when it exits.
  minivm('up', '-f', file);
});

after(async () => {
  try { minivm('down', LAB, '--cleanup'); } catch (_) { /* already gone */ }
  await browser?.close();
  await server?.stop();
});

async function openConsole(page) {
  await graphOf(page, LAB);
  await page.waitForFunction(() => window.__minivmGraph.state('vm1') === 'running', null, { timeout: 60_000 });
  const p = await page.evaluate(() => window.__minivmGraph.pagePosition('vm:vm1'));
  await page.mouse.click(p.x, p.y);
  await page.click('.vm-props .console-vm');
  await page.waitForSelector('.console-panel .terminal[data-console="connected"]');
}

const consoleText = (page) => page.evaluate(() => window.__minivmConsole.text());

async function waitText(page, needle) {
  try {
    await page.waitForFunction((n) => window.__minivmConsole?.text().includes(n), needle, { timeout: 30_000 });
  } catch (e) {
    throw new Error(`console never showed ${JSON.stringify(needle)}:\n${await consoleText(page)}`, { cause: e });
  }
}

test('type in the browser console, share it with a second page, reload for the scrollback', { timeout: 300_000 }, async () => {
  const a = await openApp(browser, `${server.url}/?lab=${LAB}`);
  await openConsole(a.page);
  // The boot log is there from the start.
  await waitText(a.page, 'minivm: ready vm1');
  await a.page.keyboard.type('echo mark-$((6*7)) $(hostname)\n');
  await waitText(a.page, 'mark-42 vm1');
  await a.page.screenshot({ path: join(screenshotDir, 'console.png') });

  const b = await openApp(browser, `${server.url}/?lab=${LAB}`);
  await openConsole(b.page);
  await waitText(b.page, 'mark-42 vm1');
  await b.page.keyboard.type('echo second-$((1+1))\n');
  await waitText(b.page, 'second-2');
  await waitText(a.page, 'second-2');

  // Closing a console and opening it again at once works; so does a reload.
  await b.page.click('.close-console');
  await b.page.waitForSelector('.console-panel', { state: 'detached' });
  await b.page.click('.vm-props .console-vm');
  await waitText(b.page, 'second-2');
  await a.page.reload();
  await a.page.waitForSelector('body[data-hydrated="true"]');
  await openConsole(a.page);
  await waitText(a.page, 'second-2');
  await waitText(a.page, 'minivm: ready vm1');

  // `minivm console` while the server runs goes through it: same scrollback,
  // and what it types shows in the browser. Ctrl-] detaches.
  const cli = spawn(bin, ['--state-dir', server.stateDir, 'console', LAB, 'vm1'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let cliOut = '';
  cli.stdout.on('data', (c) => { cliOut += c; });
  const exited = new Promise((r) => cli.once('exit', r));
  const until = async (needle) => {
    const t0 = Date.now();
    while (!cliOut.includes(needle)) {
      if (Date.now() - t0 > 30_000) throw new Error(`minivm console never showed ${needle}:\n${cliOut}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  try {
    await until('mark-42 vm1');
    cli.stdin.write('echo cli-$((2+3))\n');
    await until('cli-5');
    await waitText(a.page, 'cli-5');
    cli.stdin.write(Buffer.from([0x1d]));
    assert.equal(await exited, 0);
  } finally {
    if (cli.exitCode === null) cli.kill('SIGKILL');
  }

  // The QEMU killed -9: the page shows the crash at once, with the VM's
  // last console lines.
  const pid = JSON.parse(minivm('status', LAB, '--json'))[0].vms.find((v) => v.name === 'vm1').pid;
  process.kill(pid, 'SIGKILL');
  await a.page.waitForFunction(() => window.__minivmGraph.state('vm1') === 'crashed', null, { timeout: 10_000 });
  await a.page.waitForSelector('.banner.error .error-text');
  const banner = await a.page.locator('.banner.error .error-text').innerText();
  assert.match(banner, /vm1 crashed\. Its last console lines:/);
  assert.match(banner, /cli-5/, banner);
  await a.page.screenshot({ path: join(screenshotDir, 'crashed.png') });
  assert.deepEqual(a.errors, []);
  assert.deepEqual(b.errors, []);
  await a.page.close();
  await b.page.close();
});
