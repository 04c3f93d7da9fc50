// The Admin Portal in a real browser with JavaScript turned off: a link generated through
// the API opens one organization's audit log; filters, an event's detail and proof bundle,
// the CSV and proven JSONL exports (checked with `stele verify-export`), the verify page;
// a reused link, another organization's ids, a revoked and a signed-out session are all
// refused. The steps share one browser and run in order; screenshots of every portal page
// land in screenshots/ (docs/admin-portal-*.png are copies).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { BASE, SCREENSHOTS, api, openBrowser } from './support.mjs';
const STELE = process.env.STELE_BIN ?? path.resolve(import.meta.dirname, '../target/debug/stele');

const HOUR = 3600 * 1000;
const NOW = Math.floor(Date.now() / HOUR) * HOUR;
const PEOPLE = [
  { id: 'user_01HZMARA', type: 'user', name: 'Mara Okafor' },
  { id: 'user_01HZTOMAS', type: 'user', name: 'Tomás Ruiz' },
  { id: 'user_01HZLENA', type: 'user', name: 'Lena Fischer' },
];
const ACTIONS = ['portal_user.signed_in', 'portal_file.shared', 'portal_role.changed'];
const EVENT_COUNT = 57;

let context;
let page;
let browser;
let initech;
let umbrella;
let initechEvents; // newest first
let umbrellaEvents;
let link;

async function screenshot(name, options = { fullPage: true }) {
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), ...options });
}

async function search(organizationId) {
  const found = [];
  let after = '';
  for (;;) {
    const { status, body } = await api(
      'GET',
      `/audit_logs/events?organization_id=${organizationId}&limit=100${after}`,
    );
    assert.equal(status, 200, JSON.stringify(body));
    found.push(...body.data);
    if (!body.list_metadata.after) return found;
    after = `&after=${body.list_metadata.after}`;
  }
}

async function seed(name, count) {
  const organization = await api('POST', '/organizations', { name });
  assert.equal(organization.status, 201, JSON.stringify(organization.body));
  const id = organization.body.id;
  for (let index = 0; index < count; index += 1) {
    const action = ACTIONS[index % ACTIONS.length];
    const created = await api('POST', '/audit_logs/events', {
      organization_id: id,
      event: {
        action,
        occurred_at: new Date(NOW - (count - index) * 2 * HOUR).toISOString(),
        actor: PEOPLE[index % PEOPLE.length],
        targets: [{ id: `doc_${index}`, type: 'document', name: `Quarterly plan ${index}` }],
        context: { location: `198.51.100.${20 + (index % 5)}`, user_agent: 'Mozilla/5.0' },
      },
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
  }
  return id;
}

async function generateLink(organization, externalUserId) {
  const { status, body } = await api('POST', '/portal/generate_link', {
    organization,
    intent: 'audit_logs',
    return_url: 'https://app.initech.example/settings/security',
    external_user_id: externalUserId,
  });
  assert.equal(status, 201, JSON.stringify(body));
  return body.link;
}

/** RFC 4180 records. */
function parseCsv(text) {
  const records = [];
  let record = [];
  let field = '';
  let quoted = false;
  for (let index = 0; index < text.length; index += 1) {
    const char = text[index];
    if (quoted) {
      if (char === '"' && text[index + 1] === '"') {
        field += '"';
        index += 1;
      } else if (char === '"') quoted = false;
      else field += char;
    } else if (char === '"') quoted = true;
    else if (char === ',') {
      record.push(field);
      field = '';
    } else if (char === '\n' || char === '\r') {
      if (char === '\r' && text[index + 1] === '\n') index += 1;
      record.push(field);
      records.push(record);
      record = [];
      field = '';
    } else field += char;
  }
  if (field !== '' || record.length > 0) {
    record.push(field);
    records.push(record);
  }
  return records;
}

const rowIds = () => page.locator('#events tbody tr').evaluateAll(
  (rows) => rows.map((row) => row.getAttribute('data-event-id')),
);

before(async () => {
  browser = await openBrowser('stele-e2e-portal-', {
    acceptDownloads: true,
    javaScriptEnabled: false,
  });
  ({ context, page } = browser);
  for (const action of ACTIONS) {
    const schema = await api('POST', `/audit_logs/actions/${action}/schemas`, {
      targets: [{ type: 'document' }],
    });
    assert.ok([200, 201].includes(schema.status), JSON.stringify(schema.body));
  }
  initech = await seed('Initech', EVENT_COUNT);
  umbrella = await seed('Umbrella', 3);
  initechEvents = await search(initech);
  umbrellaEvents = await search(umbrella);
  link = await generateLink(initech, 'admin_e2e');
});

after(async () => {
  await browser?.close();
});

test('a generated link opens the organization\'s audit log, newest first', async () => {
  const response = await page.goto(link);
  assert.equal(response.status(), 200);
  assert.equal(new URL(page.url()).pathname, '/portal/events', 'the secret leaves the address bar');
  await page.getByRole('heading', { name: 'Audit log of Initech' }).waitFor();
  assert.deepEqual(await rowIds(), initechEvents.slice(0, 50).map((event) => event.id));
  const back = page.getByRole('link', { name: 'Back to app.initech.example' });
  assert.equal(await back.getAttribute('href'), 'https://app.initech.example/settings/security');
  const cookies = await context.cookies(`${BASE}/portal/events`);
  const portal = cookies.find((cookie) => cookie.name === 'stele_portal');
  assert.ok(portal?.httpOnly, 'the portal cookie is HttpOnly');
  assert.ok(!cookies.some((cookie) => cookie.name === 'stele_session'), 'no dashboard session');
  await screenshot('portal-events', { fullPage: false });
  await page.getByRole('link', { name: 'Load more' }).click();
  assert.deepEqual(await rowIds(), initechEvents.slice(50).map((event) => event.id));
  await page.getByRole('link', { name: 'Back to the newest' }).click();
});

test('filters narrow the list by action and actor', async () => {
  await page.getByLabel('Actions').fill('portal_file.shared');
  await page.getByLabel('Actor ids').fill('user_01HZTOMAS, user_01HZLENA');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.waitForURL(/actions=portal_file.shared/);
  const expected = initechEvents.filter((event) => event.action === 'portal_file.shared'
    && ['user_01HZTOMAS', 'user_01HZLENA'].includes(event.actor.id));
  assert.ok(expected.length > 0);
  assert.deepEqual(await rowIds(), expected.map((event) => event.id));
});

test('the CSV export downloads exactly the filtered events', async () => {
  const expected = (await rowIds()).slice().sort();
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.locator('#export-csv').click(),
  ]);
  assert.match(download.suggestedFilename(), /^audit_log_export_.*\.csv$/);
  const [header, ...rows] = parseCsv(readFileSync(await download.path(), 'utf8'))
    .filter((row) => row.length > 1);
  const column = (name) => header.indexOf(name);
  assert.deepEqual(rows.map((row) => row[column('id')]).sort(), expected);
  for (const row of rows) {
    assert.equal(row[column('action')], 'portal_file.shared');
    assert.equal(row[column('organization_id')], initech);
  }
});

test('the proven JSONL export verifies offline with the key on the verify page', async () => {
  await page.getByRole('link', { name: 'Clear filters' }).click();
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.locator('#export-proven').click(),
  ]);
  const file = await download.path();
  await page.getByRole('link', { name: 'Verify it yourself' }).first().click();
  await page.getByRole('heading', { name: 'Verify it yourself' }).waitFor();
  const key = (await page.locator('#verifier-key').innerText()).trim();
  assert.match(await page.locator('#verify-command').innerText(), /stele verify-export/);
  await screenshot('portal-verify');
  const output = execFileSync(STELE, ['verify-export', file, '--public-key', key]).toString();
  assert.match(output, new RegExp(`^OK: ${EVENT_COUNT} events of .*/${initech} `));
});

test('an event\'s detail shows it and its proof bundle verifies', async () => {
  await page.getByRole('link', { name: 'Audit log' }).first().click();
  const newest = initechEvents[0];
  await page.locator(`#events tbody tr[data-event-id="${newest.id}"] td a`).first().click();
  await page.waitForURL(`${BASE}/portal/events/${newest.id}`);
  const shown = JSON.parse(await page.locator('#event-json').innerText());
  assert.deepEqual(shown, newest);
  const key = (await page.locator('#verify-command').innerText()).split('--public-key ')[1].trim();
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.locator('#download-proof').click(),
  ]);
  assert.equal(download.suggestedFilename(), `${newest.id}.proof.jsonl`);
  const output = execFileSync(STELE, ['verify-export', await download.path(), '--public-key', key]).toString();
  assert.match(output, /^OK: 1 events/);
  await page.reload();
  await screenshot('portal-event');
});

test('another organization\'s event, proof and export ids answer 404', async () => {
  const foreign = umbrellaEvents[0].id;
  for (const url of [`/portal/events/${foreign}`, `/portal/events/${foreign}/proof`]) {
    const response = await page.goto(`${BASE}${url}`);
    assert.equal(response.status(), 404, url);
    assert.ok(!(await page.content()).includes('Umbrella'), `${url} names the other organization`);
  }
  const exported = await api('POST', '/audit_logs/exports', {
    organization_id: umbrella,
    range_start: '2000-01-01T00:00:00Z',
    range_end: '2100-01-01T00:00:00Z',
  });
  assert.equal(exported.status, 201);
  const response = await page.goto(`${BASE}/portal/exports/${exported.body.id}`);
  assert.equal(response.status(), 404);
  const dashboard = await page.goto(`${BASE}/dashboard/organizations`);
  assert.equal(new URL(page.url()).pathname, '/dashboard/login', 'the portal never opens the dashboard');
  assert.equal(dashboard.status(), 200);
});

test('a used link is refused', async () => {
  const response = await page.goto(link);
  assert.equal(response.status(), 403);
  await page.getByRole('heading', { name: 'This link can no longer be used' }).waitFor();
  await screenshot('portal-link-used');
  const stillOpen = await page.goto(`${BASE}/portal/events`);
  assert.equal(stillOpen.status(), 200, 'the session it started is unaffected');
});

test('revoking the admin ends the open session at once', async () => {
  const revoked = await api('POST', '/portal/revoke_link', {
    organization: initech,
    external_user_id: 'admin_e2e',
  });
  assert.equal(revoked.status, 204);
  const response = await page.goto(`${BASE}/portal/events`);
  assert.equal(response.status(), 401);
  await page.getByRole('heading', { name: 'Your portal session has ended' }).waitFor();
});

test('signing out ends the session and the cookie no longer opens anything', async () => {
  await page.goto(await generateLink(initech, 'admin_e2e_2'));
  await page.getByRole('heading', { name: 'Audit log of Initech' }).waitFor();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Signed out' }).waitFor();
  const response = await page.goto(`${BASE}/portal/events/${initechEvents[0].id}`);
  assert.equal(response.status(), 401);
});

test('a log_streams link opens the organization\'s log streams page only', async () => {
  const { status, body } = await api('POST', '/portal/generate_link', {
    organization: initech,
    intent: 'log_streams',
    return_url: 'https://app.initech.example/settings/security',
  });
  assert.equal(status, 201, JSON.stringify(body));
  await page.goto(body.link);
  assert.equal(new URL(page.url()).pathname, '/portal/log-streams');
  await page.getByRole('heading', { name: 'Log streams of Initech' }).waitFor();
  await page.getByText('HTTPS endpoint (webhook)').click();
  await page.getByRole('button', { name: 'Add GenericHttps stream' }).waitFor();
  await screenshot('portal-log-streams');
  const response = await page.goto(`${BASE}/portal/events`);
  assert.equal(response.status(), 404, 'a log streams session does not open the audit log');
});
