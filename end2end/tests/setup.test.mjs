// A VM's setup edited in its panel: a file with a bad path shows the
// validator's words beside the field; fixed, saved and the VM restarted,
// the file is in the guest and the command ran once it was ready (read
// back through the command box). Suspend and Start: the VM resumes with
// what it had in memory.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openApp, graphOf, labServer, runInPanel } from './harness.mjs';

const LAB = 'setup-e2e';
let lab;
let browser;
let server;
let minivm;

before(async () => {
  lab = await labServer(LAB, `version: 1
name: ${LAB}
defaults: {image: tiny}
networks:
  - {name: lan, subnet: 10.37.0.0/24, position: {x: 250, y: 120}}
nodes:
  - {name: h1, position: {x: 120, y: 300}, nics: [{network: lan, address: 10.37.0.11/24}]}
`);
  ({ browser, server, minivm } = lab);
});

after(async () => lab?.stop());

const run = async (page, line) => (await runInPanel(page, line))[1].trim();

test('files and commands from the VM panel reach the guest at its next boot', { timeout: 300_000 }, async () => {
  const { page, errors } = await openApp(browser, `${server.url}/?lab=${LAB}`);
  await graphOf(page, LAB);
  const p = await page.evaluate(() => window.__minivmGraph.pagePosition('vm:h1'));
  await page.mouse.click(p.x, p.y);
  await page.click('.vm-props .add-file');
  await page.fill('.vm-props .file-row[data-file="0"] .file-path', 'etc/hello');
  await page.press('.vm-props .file-row[data-file="0"] .file-path', 'Tab');
  await page.waitForSelector('.vm-props .file-row .field-error');
  assert.match(await page.textContent('.vm-props .file-row .field-error'), /is not absolute/);
  await page.fill('.vm-props .file-row[data-file="0"] .file-path', '/etc/lab/hello');
  await page.press('.vm-props .file-row[data-file="0"] .file-path', 'Tab');
  await page.fill('.vm-props .file-row[data-file="0"] .file-content', 'hi from the editor\n');
  await page.press('.vm-props .file-row[data-file="0"] .file-content', 'Tab');
  await page.fill('.vm-props .node-exec', `sh -c "cat /etc/lab/hello > /tmp/ran"`);
  await page.press('.vm-props .node-exec', 'Tab');
  await page.waitForFunction(() => !document.querySelector('.vm-props .field-error'));
  await page.click('.save');
  await page.waitForSelector('.save:has-text("Saved")');

  // Read at boot: a restart brings the file, then the command runs.
  await page.click('.vm-props .restart-vm');
  await page.waitForFunction(() => document.querySelector('.status-text')?.textContent.includes('restart: done'), null, { timeout: 120_000 });
  assert.equal(await run(page, 'cat /etc/lab/hello'), 'hi from the editor');
  assert.equal(await run(page, 'cat /tmp/ran'), 'hi from the editor');
  const st = JSON.parse(minivm('status', LAB, '--json'))[0];
  assert.deepEqual(st.vms[0].setup.done, ['sh -c "cat /etc/lab/hello > /tmp/ran"']);
  assert.deepEqual(errors, []);
  await page.close();
});

test('Suspend saves the VM and Start resumes it with its memory', { timeout: 300_000 }, async () => {
  const { page, errors } = await openApp(browser, `${server.url}/?lab=${LAB}`);
  await graphOf(page, LAB);
  const p = await page.evaluate(() => window.__minivmGraph.pagePosition('vm:h1'));
  await page.mouse.click(p.x, p.y);
  // Something that lives only in the guest's memory (/tmp is a tmpfs).
  assert.equal(await run(page, 'sh -c "echo in-memory > /tmp/kept; cat /tmp/kept"'), 'in-memory');
  await page.click('.vm-props .suspend-vm');
  await page.waitForFunction(() => document.querySelector('.status-text')?.textContent.includes('suspend: done'), null, { timeout: 120_000 });
  await page.waitForSelector('.vm-props .badge.stopped');
  const saved = JSON.parse(minivm('status', LAB, '--json'))[0].vms[0];
  assert.equal(saved.state, 'stopped');
  assert.ok(saved.saved_bytes > 0);
  await page.click('.vm-props .start-vm');
  await page.waitForFunction(() => document.querySelector('.status-text')?.textContent.includes('start: done'), null, { timeout: 120_000 });
  assert.equal(await run(page, 'cat /tmp/kept'), 'in-memory');
  assert.deepEqual(errors, []);
  await page.close();
});

test('a snapshot taken in the Snapshots panel brings the VM\'s memory back', { timeout: 300_000 }, async () => {
  const { page, errors } = await openApp(browser, `${server.url}/?lab=${LAB}`);
  await graphOf(page, LAB);
  const p = await page.evaluate(() => window.__minivmGraph.pagePosition('vm:h1'));
  await page.mouse.click(p.x, p.y);
  assert.equal(await run(page, 'sh -c "echo before > /tmp/snap; cat /tmp/snap"'), 'before');
  await page.click('.snapshots-open');
  await page.fill('.snapshot-name', 'before-change');
  await page.click('.take-snapshot');
  await page.waitForSelector('.snapshot-row[data-snapshot="before-change"]', { timeout: 120_000 });
  assert.match(await page.textContent('.snapshot-row[data-snapshot="before-change"]'), /1 \(1 running\)/);
  assert.equal(await run(page, 'sh -c "echo after > /tmp/snap; cat /tmp/snap"'), 'after');
  await page.click('.snapshot-row[data-snapshot="before-change"] .restore-snapshot');
  await page.waitForFunction(() => document.querySelector('.status-text')?.textContent.includes('restore "before-change": done'), null, { timeout: 120_000 });
  await page.waitForSelector('.vm-props .badge.running');
  assert.equal(await run(page, 'cat /tmp/snap'), 'before');
  await page.click('.snapshot-row[data-snapshot="before-change"] .delete-snapshot');
  await page.waitForFunction(() => !document.querySelector('.snapshot-row'));
  assert.deepEqual(JSON.parse(minivm('snapshot', 'list', LAB, '--json')), []);
  assert.deepEqual(errors, []);
  await page.close();
});

test('a failing exec command is shown on the page with its VM, command and stderr', { timeout: 300_000 }, async () => {
  const { page } = await openApp(browser, `${server.url}/?lab=${LAB}`);
  await graphOf(page, LAB);
  const p = await page.evaluate(() => window.__minivmGraph.pagePosition('vm:h1'));
  await page.mouse.click(p.x, p.y);
  await page.fill('.vm-props .node-exec', 'sh -c "echo broken >&2; exit 3"');
  await page.press('.vm-props .node-exec', 'Tab');
  await page.click('.save');
  await page.waitForSelector('.save:has-text("Saved")');
  await page.click('.vm-props .restart-vm');
  await page.waitForSelector('.banner.error .error-text', { timeout: 120_000 });
  const shown = await page.textContent('.banner.error .error-text');
  assert.match(shown, /h1: setup command "sh -c \\"echo broken >&2; exit 3\\"" exited 3: broken/);
  await page.close();
});
