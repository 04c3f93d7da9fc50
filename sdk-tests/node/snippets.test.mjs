// The Node snippet the dashboard shows after a schema is saved runs as shown: sign in as
// `admin` (STELE_ADMIN_PASSWORD, set by the top-level test script), open the saved
// version's page, run its Node snippet with this suite's SDK, and find the event it sent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const BASE_URL = `http://${process.env.STELE_HOST}:${process.env.STELE_PORT}`;
const API_KEY = process.env.STELE_API_KEY;
const ADMIN_PASSWORD = process.env.STELE_ADMIN_PASSWORD;

async function api(method, apiPath, body) {
  const response = await fetch(`${BASE_URL}${apiPath}`, {
    method,
    headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

// The cookies a response sets, as a Cookie header value.
const cookiesOf = (response) =>
  response.headers.getSetCookie().map((cookie) => cookie.split(';')[0]).join('; ');

async function signIn() {
  assert.ok(ADMIN_PASSWORD, 'STELE_ADMIN_PASSWORD is set, so the dashboard can be signed in to');
  const login = await fetch(`${BASE_URL}/dashboard/login`, { redirect: 'manual' });
  const token = (await login.text()).match(/name="csrf_token" value="([^"]+)"/)?.[1];
  assert.ok(token, 'the login form carries a CSRF token');
  const signedIn = await fetch(`${BASE_URL}/dashboard/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: cookiesOf(login) },
    body: new URLSearchParams({ csrf_token: token, next: '/dashboard/actions', username: 'admin', password: ADMIN_PASSWORD }),
  });
  assert.equal(signedIn.status, 303);
  return cookiesOf(signedIn);
}

const NAMED = { quot: '"', apos: "'", lt: '<', gt: '>', amp: '&' };
const unescapeHtml = (text) =>
  text.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, name) => {
    if (name.startsWith('#x') || name.startsWith('#X')) return String.fromCodePoint(parseInt(name.slice(2), 16));
    if (name.startsWith('#')) return String.fromCodePoint(Number(name.slice(1)));
    return NAMED[name] ?? whole;
  });

test('the Node snippet shown after saving a schema stores its event', async () => {
  const organization = await api('POST', '/organizations', { name: `Snippet Org ${randomUUID()}` });
  assert.equal(organization.status, 201);
  const action = `snippet.node_${randomUUID().slice(0, 8)}`;
  const schema = await api('POST', `/audit_logs/actions/${action}/schemas`, { targets: [{ type: 'team' }] });
  assert.equal(schema.status, 201);

  const cookie = await signIn();
  const page = await fetch(`${BASE_URL}/dashboard/actions/${action}/versions/1`, { headers: { Cookie: cookie } });
  assert.equal(page.status, 200);
  const found = (await page.text()).match(/<pre class="code-block" data-snippet="node">([\s\S]*?)<\/pre>/);
  assert.ok(found, 'the page shows a Node snippet');
  const snippet = unescapeHtml(found[1]);
  assert.ok(snippet.includes(organization.body.id), snippet);

  // Written beside this suite so the snippet's import resolves to the installed SDK.
  const file = path.join(import.meta.dirname, `.snippet-${randomUUID()}.mjs`);
  writeFileSync(file, snippet);
  try {
    await promisify(execFile)(process.execPath, [file], { env: { ...process.env, STELE_API_KEY: API_KEY } });
  } catch (error) {
    assert.fail(`${snippet}\n--- stderr ---\n${error.stderr}`);
  } finally {
    rmSync(file, { force: true });
  }

  const stored = await api('GET', `/audit_logs/events?organization_id=${organization.body.id}&actions=${action}`);
  assert.equal(stored.status, 200);
  assert.deepEqual(stored.body.data.map((event) => event.action), [action]);
});
