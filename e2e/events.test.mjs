// The events viewer in a real browser: an organization's events newest first, the search
// filters, "Load more", an event's detail with its hash, the Export button's CSV download,
// and the retention setting on the organization page. The steps share one browser and run
// in order; screenshots land in screenshots/ (one of them is docs/dashboard-events.png).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ADMIN_PASSWORD, BASE, SCREENSHOTS, api, openBrowser } from './support.mjs';

const HOUR = 3600 * 1000;
// Whole hours, so the range filter's minute-precision inputs fall between events.
const NOW = Math.floor(Date.now() / HOUR) * HOUR;
const PEOPLE = [
  { id: 'user_01HZJANE', type: 'user', name: 'Jane Doe' },
  { id: 'user_01HZSAM', type: 'user', name: 'Sam Lee' },
  { id: 'user_01HZPRIYA', type: 'user', name: 'Priya Natarajan' },
  { id: 'user_01HZALEX', type: 'user', name: 'Alex Kim' },
];
const ACTIONS = {
  'invoice.paid': [{ type: 'invoice' }],
  'member.invited': [{ type: 'team' }, { type: 'user' }],
  'report.exported': [{ type: 'report' }],
};
const EVENT_COUNT = 56;

let context;
let page;
let browser;
let organizationId;
let organizationPath;
let events; // as returned by the search API, newest first

async function screenshot(name, options = { fullPage: true }) {
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), ...options });
}

/** Every event of the organization matching `query` through the search API, newest first. */
async function search(query = '') {
  const found = [];
  let after = '';
  for (;;) {
    const { status, body } = await api(
      'GET',
      `/audit_logs/events?organization_id=${organizationId}&limit=100${query}${after}`,
    );
    assert.equal(status, 200, JSON.stringify(body));
    found.push(...body.data);
    if (!body.list_metadata.after) return found;
    after = `&after=${body.list_metadata.after}`;
  }
}

/** RFC 4180 records (quoted fields may hold commas, quotes and newlines). */
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
      } else if (char === '"') {
        quoted = false;
      } else {
        field += char;
      }
    } else if (char === '"') {
      quoted = true;
    } else if (char === ',') {
      record.push(field);
      field = '';
    } else if (char === '\n' || char === '\r') {
      if (char === '\r' && text[index + 1] === '\n') index += 1;
      record.push(field);
      records.push(record);
      record = [];
      field = '';
    } else {
      field += char;
    }
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
  browser = await openBrowser('stele-e2e-chromium-', { acceptDownloads: true });
  ({ context, page } = browser);

  for (const [action, targets] of Object.entries(ACTIONS)) {
    const schema = await api('POST', `/audit_logs/actions/${action}/schemas`, { targets });
    assert.ok([200, 201].includes(schema.status), JSON.stringify(schema.body));
  }
  const organization = await api('POST', '/organizations', {
    name: 'Acme Corp',
    domains: ['acme-corp.example'],
  });
  assert.equal(organization.status, 201, JSON.stringify(organization.body));
  organizationId = organization.body.id;
  organizationPath = `/dashboard/organizations/${organizationId}`;
  const names = Object.keys(ACTIONS);
  // Oldest first, three hours apart, ending an hour ago.
  for (let index = 0; index < EVENT_COUNT; index += 1) {
    const action = names[index % names.length];
    const actor = PEOPLE[index % PEOPLE.length];
    const targets = {
      'invoice.paid': [{ id: `inv_${1000 + index}`, type: 'invoice', name: `Invoice ${1000 + index}` }],
      'member.invited': [
        { id: 'team_design', type: 'team', name: 'Design' },
        { id: `user_invitee_${index}`, type: 'user' },
      ],
      'report.exported': [{ id: `report_q${(index % 4) + 1}`, type: 'report' }],
    }[action];
    const created = await api('POST', '/audit_logs/events', {
      organization_id: organizationId,
      event: {
        action,
        occurred_at: new Date(NOW - (EVENT_COUNT - index) * 3 * HOUR).toISOString(),
        actor,
        targets,
        context: { location: `203.0.113.${10 + (index % 7)}`, user_agent: 'Mozilla/5.0' },
        metadata: action === 'invoice.paid' ? { amount_cents: 1200 + index * 100, currency: 'EUR' } : undefined,
      },
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
  }
  events = await search();
  assert.equal(events.length, EVENT_COUNT);
});

after(async () => {
  await browser?.close();
});

test('the events viewer needs a session', async () => {
  await page.goto(`${BASE}${organizationPath}/events`);
  assert.equal(new URL(page.url()).pathname, '/dashboard/login');
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill(ADMIN_PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${BASE}${organizationPath}/events`);
});

test('shows the newest events first and "Load more" appends the rest', async () => {
  await page.getByRole('heading', { name: 'Events of Acme Corp' }).waitFor();
  let ids = await rowIds();
  assert.equal(ids.length, 50);
  assert.deepEqual(ids, events.slice(0, 50).map((event) => event.id));
  await screenshot('10-events-viewer', { fullPage: false });

  await page.getByRole('link', { name: 'Load more' }).click();
  await page.locator(`#events tbody tr[data-event-id="${events.at(-1).id}"]`).waitFor();
  ids = await rowIds();
  assert.deepEqual(ids, events.map((event) => event.id), 'every event once, in order');
  assert.equal(await page.getByRole('link', { name: 'Load more' }).count(), 0);
});

test('filters narrow the list and are kept in the URL', async () => {
  await page.getByLabel('Actions').fill('invoice.paid');
  await page.getByLabel('Actor names').fill('Jane Doe, Sam Lee');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.waitForURL(/actions=invoice.paid/);
  const expected = await search('&actions=invoice.paid&actor_names=Jane%20Doe&actor_names=Sam%20Lee');
  assert.ok(expected.length > 0 && expected.length < EVENT_COUNT / 3, `${expected.length} events`);
  assert.deepEqual(await rowIds(), expected.map((event) => event.id));
  for (const text of await page.locator('#events tbody tr').allInnerTexts()) {
    assert.match(text, /invoice\.paid/);
    assert.match(text, /Jane Doe|Sam Lee/);
  }

  // The occurred_at range (datetime-local, UTC) narrows it further.
  const from = new Date(NOW - 60 * HOUR).toISOString().slice(0, 16);
  const to = new Date(NOW - 12 * HOUR).toISOString().slice(0, 16);
  await page.locator('form.filters input[name="range_start"]').fill(from);
  await page.locator('form.filters input[name="range_end"]').fill(to);
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.waitForURL(/range_start=/);
  const ranged = await search(
    `&actions=invoice.paid&actor_names=Jane%20Doe&actor_names=Sam%20Lee&range_start=${from}:00Z&range_end=${to}:59.999Z`,
  );
  assert.ok(ranged.length > 0 && ranged.length < expected.length, `${ranged.length} events`);
  assert.deepEqual(await rowIds(), ranged.map((event) => event.id));
  await screenshot('11-events-filtered');

  await page.getByLabel('Target ids').fill('no_such_target');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.getByText('No events match these filters.').waitFor();
  await page.getByLabel('Target ids').fill('');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.locator('#events').waitFor();
});

test('the Export button downloads a CSV of exactly the filtered events', async () => {
  // The export form starts from the viewer's filters and range.
  const exportForm = page.locator('form.export-form');
  assert.notEqual(await exportForm.locator('input[name="range_start"]').inputValue(), '');
  const expected = (await rowIds()).slice().sort();
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    exportForm.getByRole('button', { name: 'Export CSV' }).click(),
  ]);
  assert.match(download.suggestedFilename(), /^audit_log_export_.*\.csv$/);
  const file = await download.path();
  const [header, ...rows] = parseCsv(readFileSync(file, 'utf8')).filter((row) => row.length > 1);
  assert.equal(header[0], 'id');
  const column = (name) => header.indexOf(name);
  assert.ok(column('action') > 0 && column('actor_name') > 0, header.join(','));
  assert.deepEqual(rows.map((row) => row[0]).sort(), expected);
  for (const row of rows) {
    assert.equal(row[column('action')], 'invoice.paid');
    assert.match(row[column('actor_name')], /^(Jane Doe|Sam Lee)$/);
    assert.equal(row[column('organization_id')], organizationId);
  }
  // The page stays where it was.
  assert.match(page.url(), /\/events\?/);
});

test('an event\'s detail shows its stored JSON, version, sequence and hash', async () => {
  await page.getByRole('link', { name: 'Clear filters' }).click();
  const newest = events[0];
  await page.locator(`#events tbody tr[data-event-id="${newest.id}"] td a`).first().click();
  await page.waitForURL(`${BASE}${organizationPath}/events/${newest.id}`);
  assert.equal(await page.locator('#event-sequence').innerText(), String(newest.sequence));
  assert.equal(await page.locator('#event-version').innerText(), String(newest.version));
  assert.match(await page.locator('#event-hash').innerText(), /^[0-9a-f]{64}$/);
  const shown = JSON.parse(await page.locator('#event-json').innerText());
  assert.deepEqual(shown, newest, 'the stored JSON is what the search API returns');
  await screenshot('12-event-detail');
});

test('an event\'s proof bundle downloads and verifies offline with the shown public key', async () => {
  assert.match(await page.locator('#proof-status').innerText(), /covered/i);
  const key = (await page.locator('#verifier-key').innerText()).trim();
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.locator('#download-proof').click(),
  ]);
  assert.match(download.suggestedFilename(), /\.proof\.jsonl$/);
  const stele = process.env.STELE_BIN ?? path.resolve(import.meta.dirname, '../target/debug/stele');
  const output = execFileSync(stele, ['verify-export', await download.path(), '--public-key', key]).toString();
  assert.match(output, /^OK: 1 events/);
  await page.reload();
  assert.match(await page.locator('#proof-status').innerText(), /^Covered/);
  await screenshot('12b-event-proof');
});

test('the organization page sets and clears retention', async () => {
  await page.getByRole('link', { name: 'Acme Corp' }).click();
  await page.waitForURL(`${BASE}${organizationPath}`);
  await page.getByText('kept forever').waitFor();
  await page.getByLabel('Retention period in days').fill('400');
  await page.getByRole('button', { name: 'Save retention' }).click();
  await page.getByText('Retention saved.').waitFor();
  assert.match(await page.locator('#retention-current').innerText(), /400 days/);
  let { body } = await api('GET', `/organizations/${organizationId}/audit_logs_retention`);
  assert.equal(body.retention_period_in_days, 400);
  await screenshot('13-organization-retention');

  await page.getByRole('button', { name: 'Keep forever' }).click();
  await page.getByText('Retention saved.').waitFor();
  await page.getByText('kept forever').waitFor();
  ({ body } = await api('GET', `/organizations/${organizationId}/audit_logs_retention`));
  assert.equal(body.retention_period_in_days, null);
});
