// Shared end-to-end harness: starts the real `minivm serve` on a free
// loopback port with a fresh state directory, and a real headless Chromium
// (Debian's, never a downloaded one). Everything started here is stopped by
// PID in stop(), even when a test fails.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const root = fileURLToPath(new URL('../..', import.meta.url));
export const screenshotDir = join(root, 'end2end', 'screenshots');

export const bin = process.env.MINIVM_BIN ?? join(root, 'target', 'debug', 'minivm');

// `minivm --state-dir DIR ARGS...`, its stdout; throws when it fails.
export function minivmIn(stateDir, ...args) {
  return execFileSync(bin, ['--state-dir', stateDir, ...args], { encoding: 'utf8' });
}

// What `minivm image build` leaves in a state directory.
const BUILT = ['images/tiny.qcow2', 'images/tiny.json', 'cache/probe/vmlinuz', 'cache/probe/initrd.gz'];

// The `tiny` image in stateDir. With MINIVM_TEST_IMAGE_CACHE set (as
// scripts/test.sh does), it is built there once per run and hard-linked in
// (base images are read-only); otherwise built in stateDir. The tests run
// one file at a time, so no lock is needed here.
export function tinyImage(stateDir) {
  const cache = process.env.MINIVM_TEST_IMAGE_CACHE;
  if (!cache) {
    minivmIn(stateDir, 'image', 'build');
    return;
  }
  if (!BUILT.every((f) => existsSync(join(cache, f)))) {
    mkdirSync(cache, { recursive: true });
    minivmIn(cache, 'image', 'build');
  }
  for (const f of BUILT) {
    mkdirSync(join(stateDir, f, '..'), { recursive: true });
    try {
      linkSync(join(cache, f), join(stateDir, f));
    } catch (e) {
      // Another filesystem: a copy does as well.
      if (e.code !== 'EXDEV') throw e;
      copyFileSync(join(cache, f), join(stateDir, f));
    }
  }
}

// The token of each server started here, by its origin: every request
// needs it, on loopback too.
const tokens = new Map();

// Reads what `minivm serve` prints on start: where it listens (a URL to
// talk to it over loopback) and the login URL's token, which is remembered
// for that origin. Resolves { url, token }.
export function readStart(child, what = 'minivm serve') {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start within 30 s`)), 30_000);
    let buf = '';
    child.stdout.on('data', (chunk) => {
      buf += chunk;
      const listen = buf.match(/listening on (http:\/\/\S+)/);
      const login = buf.match(/open http:\/\/\S+\/\?token=([\w-]+)/);
      if (listen && login) {
        clearTimeout(timer);
        // Bound to all addresses: talk to it over loopback only.
        const url = listen[1].replace('://0.0.0.0:', '://127.0.0.1:');
        tokens.set(new URL(url).origin, login[1]);
        resolve({ url, token: login[1] });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}`));
    });
  });
}

// The token of the server at `url`.
export function tokenOf(url) {
  return tokens.get(new URL(url).origin);
}

// `url` as a login URL (what `minivm serve` prints, with a page's query).
export function loginUrl(url) {
  const u = new URL(url);
  u.searchParams.set('token', tokenOf(url));
  return u.toString();
}

// Headers that carry the token of the server at `url`, for direct requests.
export function auth(url, headers = {}) {
  return { ...headers, 'x-minivm-token': tokenOf(url) };
}

export async function startServer({ args = ['--bind', '127.0.0.1:0'] } = {}) {
  const stateDir = mkdtempSync(join(tmpdir(), 'minivm-e2e-'));
  // QEMU runs as nobody: it must be able to reach the VMs' directories.
  chmodSync(stateDir, 0o755);
  const child = spawn(bin, ['serve', ...args, '--state-dir', stateDir], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, MINIVM_LOG: process.env.MINIVM_LOG ?? 'warn' },
  });
  const { url, token } = await readStart(child);
  return {
    url,
    token,
    stateDir,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-quic',
      '--no-first-run',
      '--disable-sync',
    ],
  });
}

/// Opens the app through its login URL, as a person opens the URL that
/// `minivm serve` printed (the token becomes a cookie and leaves the
/// address bar), and waits until the wasm has hydrated the page.
export async function openApp(browser, url) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('response', (r) => r.status() >= 400 && errors.push(`${r.status()} ${r.url()}`));
  await page.goto(loginUrl(url));
  if (new URL(page.url()).searchParams.has('token')) throw new Error(`the login URL kept its token: ${page.url()}`);
  await page.waitForSelector('body[data-hydrated="true"]', { timeout: 30_000 });
  return { page, errors };
}

/// Waits until the canvas shows `lab`, then asks cytoscape what it holds.
export async function graphOf(page, lab) {
  await page.waitForFunction((l) => window.__minivmGraph?.lab === l, lab, { timeout: 15_000 });
  return page.evaluate(() => window.__minivmGraph.counts());
}

/// A server, a browser and lab `lab` (YAML `yaml`) brought up by the CLI,
/// for a test file's `before`; `stop()` takes it all down for its `after`.
export async function labServer(lab, yaml) {
  const server = await startServer();
  const browser = await launchBrowser();
  tinyImage(server.stateDir);
  const file = join(server.stateDir, 'lab.yaml');
  writeFileSync(file, yaml);
  const minivm = (...args) => minivmIn(server.stateDir, ...args);
  minivm('up', '-f', file);
  return {
    server,
    browser,
    minivm,
    async stop() {
      try { minivm('down', lab, '--cleanup'); } catch (_) { /* already gone */ }
      await browser.close();
      await server.stop();
    },
  };
}

/// Runs `line` in the selected VM's command box; [exit code, output].
export async function runInPanel(page, line) {
  await page.fill('.vm-props .exec-input', line);
  const n = Number(await page.getAttribute('.vm-props .exec-box', 'data-runs')) + 1;
  await page.click('.vm-props .exec-run');
  const out = await page.waitForSelector(`.vm-props .exec-output[data-run="${n}"]`, { timeout: 60_000 });
  return [Number(await out.getAttribute('data-exit')), await out.textContent()];
}
