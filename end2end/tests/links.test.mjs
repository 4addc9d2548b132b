// Links in the browser on a running two-VM lab: click a link, set it down
// with the mouse and see the guest lose its carrier through the command
// box, then up again; pick a preset and see it drawn and in force
// (`minivm status`); a delay preset shows in the RTT through the command
// box. Right-click a link,
// Capture: the packet table fills with the ICMP of a ping, and the pcap
// downloaded from the page is read by tcpdump. No QEMU restarts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { openApp, graphOf, screenshotDir, labServer, runInPanel } from './harness.mjs';

const LAB = 'links-e2e';
let lab;
let browser;
let server;
let minivm;

before(async () => {
  lab = await labServer(LAB, `version: 1
name: ${LAB}
defaults: {image: tiny}
networks:
  - {name: lan, subnet: 10.32.0.0/24, position: {x: 250, y: 120}}
nodes:
  - {name: h1, position: {x: 80, y: 300}, nics: [{network: lan, address: 10.32.0.11/24}]}
  - {name: h2, position: {x: 420, y: 300}, nics: [{network: lan, address: 10.32.0.12/24}]}
`);
  ({ browser, server, minivm } = lab);
});

after(async () => lab?.stop());

const status = () => JSON.parse(minivm('status', LAB, '--json'))[0];
const pids = () => Object.fromEntries(status().vms.map((v) => [v.name, v.pid]));

/// Waits until `f()` is true (it reads the host through the CLI).
async function until(what, f, timeoutMs = 30_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (f()) return;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/// Runs `line` in h1's command box and returns [exit code, output].
async function inH1(page, line) {
  const p = await page.evaluate(() => window.__minivmGraph.pagePosition('vm:h1'));
  await page.mouse.click(p.x, p.y);
  return runInPanel(page, line);
}

async function clickLink(page, id) {
  const p = await page.evaluate((id) => window.__minivmGraph.edgePagePosition(id), id);
  await page.mouse.click(p.x, p.y);
  await page.waitForSelector('.link-props');
  return p;
}

test('a link set down and up, and presets, with the mouse, live', { timeout: 300_000 }, async () => {
  const before = pids();
  const { page, errors } = await openApp(browser, `${server.url}/?lab=${LAB}`);
  await graphOf(page, LAB);

  await clickLink(page, 'nic:h1:0');
  await page.uncheck('.link-props .link-up');
  await until('h1 eth0 down on the host', () => status().vms[0].nics[0].carrier === false);
  assert.equal((await page.evaluate(() => window.__minivmGraph.edgeData('nic:h1:0'))).down, true);
  let [code, out] = await inH1(page, 'cat /sys/class/net/eth0/carrier');
  assert.equal(code, 0);
  assert.equal(out.trim(), '0', 'the guest lost its carrier');
  [code] = await inH1(page, 'ping -c 1 -W 2 10.32.0.12');
  assert.notEqual(code, 0, 'no ping through a cut link');

  await clickLink(page, 'nic:h1:0');
  await page.check('.link-props .link-up');
  await until('h1 eth0 up again', () => status().vms[0].nics[0].carrier === true);
  [code, out] = await inH1(page, 'ping -c 2 -W 5 10.32.0.12');
  assert.equal(code, 0, out);

  // A preset in one click: drawn dashed with its label, in force on the host.
  await clickLink(page, 'nic:h1:0');
  await page.click('.link-props .preset[data-preset="lossy"]');
  await until('5% loss in force', () => status().vms[0].nics[0].impair_label === '5% loss');
  const drawn = await page.evaluate(() => window.__minivmGraph.edgeData('nic:h1:0'));
  assert.equal(drawn.impaired, true);
  assert.equal(drawn.label, 'eth0 · 5% loss');
  await page.screenshot({ path: join(screenshotDir, 'link-preset.png') });

  // A delay preset: 40 ms more on what h1 sends, in h1's RTT (netem where
  // the kernel has it, the lab's relay where it has not).
  await clickLink(page, 'nic:h1:0');
  await page.click('.link-props .preset[data-preset="wan"]');
  await until('40 ms in force', () => status().vms[0].nics[0].impair?.delay_ms === 40);
  [code, out] = await inH1(page, 'ping -c 4 -W 5 10.32.0.12');
  assert.equal(code, 0, out);
  const avg = Number(/= [\d.]+\/([\d.]+)\//.exec(out)[1]);
  assert.ok(avg >= 38 && avg < 200, `RTT ${avg} ms with the WAN preset`);
  // Back to LAN: nothing impaired.
  await clickLink(page, 'nic:h1:0');
  await page.click('.link-props .preset[data-preset="lan"]');
  await until('no impairment', () => status().vms[0].nics[0].impair_label === '');
  assert.deepEqual(pids(), before, 'no QEMU restarted');
  assert.deepEqual(errors, []);
  await page.close();
});

test('capture from a link\'s context menu: ICMP rows, a pcap tcpdump reads', { timeout: 300_000 }, async () => {
  minivm('link', LAB, 'h1:eth0', '--up', '--clear');
  const { page, errors } = await openApp(browser, `${server.url}/?lab=${LAB}`);
  await graphOf(page, LAB);
  const p = await page.evaluate(() => window.__minivmGraph.edgePagePosition('nic:h1:0'));
  await page.mouse.click(p.x, p.y, { button: 'right' });
  await page.click('.link-menu .menu-capture');
  await page.waitForSelector('.capture-panel .capture-bar');
  await page.waitForFunction(() => window.__minivmGraph.capturing().includes('nic:h1:0'));

  const [code, out] = await inH1(page, 'ping -c 3 -W 5 10.32.0.12');
  assert.equal(code, 0, out);
  await page.waitForSelector('.capture-row[data-protocol="ICMP"]', { timeout: 30_000 });
  const rows = await page.$$eval('.capture-row[data-protocol="ICMP"]', (trs) => trs.map((tr) => tr.textContent));
  assert.ok(rows.some((r) => r.includes('10.32.0.11') && r.includes('10.32.0.12') && r.includes('echo request')), rows.join('\n'));
  assert.ok(rows.some((r) => r.includes('echo reply')), rows.join('\n'));
  await page.screenshot({ path: join(screenshotDir, 'capture-panel.png') });

  await page.click('.capture-stop');
  await page.waitForFunction(() => document.querySelector('.capture-state')?.textContent.includes('stopped'));
  await page.waitForFunction(() => window.__minivmGraph.capturing().length === 0);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('.capture-download')]);
  const file = join(server.stateDir, 'from-page.pcap');
  await download.saveAs(file);
  const tcpdump = spawnSync('tcpdump', ['-r', file, '-n'], { encoding: 'utf8' });
  assert.equal(tcpdump.status, 0, tcpdump.stderr);
  assert.match(tcpdump.stdout, /10\.32\.0\.11 > 10\.32\.0\.12: ICMP echo request/);
  assert.match(tcpdump.stdout, /10\.32\.0\.12 > 10\.32\.0\.11: ICMP echo reply/);

  // Listed until deleted.
  await page.click('.capture-delete');
  await page.waitForFunction(() => !document.querySelector('.capture-panel'));
  assert.deepEqual(errors, []);
  await page.close();
});
