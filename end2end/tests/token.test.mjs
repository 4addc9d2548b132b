// Bound off loopback, the server wants its token on every request: given
// once as ?token= it becomes a cookie; a header works for scripts. (The
// test binds 0.0.0.0 but talks to it over 127.0.0.1 only.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { startServer } from './harness.mjs';

let server;
const TOKEN = 'e2e-secret-token';

before(async () => {
  server = await startServer({ args: ['--bind', '0.0.0.0:0', '--token', TOKEN] });
});

after(async () => {
  await server?.stop();
});

function get(path, headers = {}, method = 'GET') {
  const u = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: u.port, path, method, headers }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('without the token every request is refused', async () => {
  const page = await get('/');
  assert.equal(page.status, 401);
  assert.match(page.body, /token is required/);
  assert.equal((await get('/api/list_labs', { 'Content-Type': 'application/x-www-form-urlencoded' }, 'POST')).status, 401);
  assert.equal((await get('/', { 'x-minivm-token': 'wrong' })).status, 401);
});

test('the token in the URL opens the app and sets a cookie; the header works too', async () => {
  const first = await get(`/?token=${TOKEN}`);
  assert.equal(first.status, 303);
  assert.equal(first.headers.location, '/');
  assert.equal((await get('/', { Cookie: `minivm_token=${TOKEN}` })).status, 200);
  const cookie = first.headers['set-cookie']?.[0] ?? '';
  assert.match(cookie, new RegExp(`minivm_token=${TOKEN}; Path=/; HttpOnly; SameSite=Strict`));
  assert.equal((await get('/healthz', { Cookie: cookie.split(';')[0] })).status, 200);
  const labs = await get('/api/list_labs', { 'x-minivm-token': TOKEN, 'Content-Type': 'application/x-www-form-urlencoded' }, 'POST');
  assert.equal(labs.status, 200);
  assert.deepEqual(JSON.parse(labs.body).map((l) => l.name), ['ospf', 'router', 'triangle']);
});
