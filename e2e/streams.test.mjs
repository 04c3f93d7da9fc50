// The log stream controls of an organization's page in a real browser: add a GenericHttps
// stream delivering to a receiver this test starts on 127.0.0.1 (the server runs with
// --allow-private-stream-destinations, as test.sh starts it for this suite), see it listed
// with its state and lag, send a test delivery, pause (the lag grows), resume (caught up),
// replay from a sequence, and delete it. What the receiver gets is checked beside what the
// page says. The steps share one browser and run in order; screenshots land in screenshots/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import path from 'node:path';
import { ADMIN_PASSWORD, BASE, SCREENSHOTS, api, openBrowser } from './support.mjs';

const ACTION = 'report.streamed';

let browser;
let page;
let receiver;
let endpoint;
let organizationId;
let organizationPath;
let streamId;
// Every request body the receiver accepted, parsed, in arrival order.
const deliveries = [];

async function screenshot(name) {
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

async function addEvents(count) {
  for (let index = 0; index < count; index += 1) {
    const created = await api('POST', '/audit_logs/events', {
      organization_id: organizationId,
      event: {
        action: ACTION,
        occurred_at: new Date().toISOString(),
        actor: { id: 'user_01HZJANE', type: 'user', name: 'Jane Doe' },
        targets: [{ id: `report_${index}`, type: 'report' }],
        context: { location: '203.0.113.7' },
      },
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
  }
}

/** The sequences of real events the receiver got, in arrival order (replays repeat). */
const deliveredSequences = () =>
  deliveries.filter((body) => !body.test).flatMap((body) => body.events.map((event) => event.sequence));

/** Opens the organization page afresh (a full load, never just a jump to an anchor). */
async function openOrganization() {
  if (new URL(page.url()).pathname === organizationPath && !new URL(page.url()).search) {
    await page.reload();
  } else {
    await page.goto(`${BASE}${organizationPath}`);
  }
}

/** Reloads the organization page until `check` holds, or fails with what the row shows. */
async function reloadUntil(what, check) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    await openOrganization();
    if (await check()) return;
    if (Date.now() > deadline) {
      assert.fail(`timed out waiting for ${what}: ${await streamRow().innerText()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

const streamRow = () => page.locator(`tr[data-stream="${streamId}"]`);
const stateBadge = () => streamRow().locator('[data-state]');
const lagCell = () => streamRow().locator('[data-lag]');

before(async () => {
  receiver = createServer((request, response) => {
    const chunks = [];
    request.on('data', (chunk) => chunks.push(chunk));
    request.on('end', () => {
      if (request.method !== 'POST' || request.url !== '/in') {
        response.writeHead(404).end();
        return;
      }
      deliveries.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      response.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
    });
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${receiver.address().port}/in`;

  browser = await openBrowser('stele-e2e-chromium-');
  page = browser.page;

  const schema = await api('POST', `/audit_logs/actions/${ACTION}/schemas`, {
    targets: [{ type: 'report' }],
  });
  assert.ok([200, 201].includes(schema.status), JSON.stringify(schema.body));
  const organization = await api('POST', '/organizations', { name: 'Streamed Co' });
  assert.equal(organization.status, 201, JSON.stringify(organization.body));
  organizationId = organization.body.id;
  organizationPath = `/dashboard/organizations/${organizationId}`;
  await addEvents(3);
});

after(async () => {
  await browser?.close();
  await new Promise((resolve) => (receiver ? receiver.close(resolve) : resolve()));
});

test('signs in and finds no log streams on the organization page', async () => {
  await page.goto(`${BASE}${organizationPath}`);
  assert.equal(new URL(page.url()).pathname, '/dashboard/login');
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill(ADMIN_PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${BASE}${organizationPath}`);
  await page.getByRole('heading', { name: 'Log streams' }).waitFor();
  await page.getByText('No log streams yet.').waitFor();
});

test('adds a GenericHttps stream to the local receiver and sees it deliver', async () => {
  await page.getByText('Add a log stream').click();
  await page.getByLabel('Destination').selectOption('GenericHttps');
  await page.locator('#stream-endpoint').fill(endpoint);
  await screenshot('20-streams-add');
  await page.getByRole('button', { name: 'Add log stream' }).click();
  // A server without --allow-private-stream-destinations says why here instead.
  const notice = page.locator('#log-streams .notice').first();
  await notice.waitFor();
  assert.equal(
    await notice.innerText(),
    "Log stream added; delivery starts from the organization's first event.",
  );
  const table = page.getByRole('table', { name: 'Log streams' });
  const row = table.locator('tr[data-stream]');
  assert.equal(await row.count(), 1);
  streamId = await row.getAttribute('data-stream');
  assert.match(streamId, /^log_stream_/);
  const text = await streamRow().innerText();
  assert.match(text, /GenericHttps/);
  assert.ok(text.includes(endpoint), `the endpoint is shown: ${text}`);
  assert.equal(await stateBadge().innerText(), 'active');

  await reloadUntil('the first 3 events delivered', async () => /caught up/.test(await lagCell().innerText()));
  assert.match(await streamRow().innerText(), /up to #3\s+3 events/);
  assert.deepEqual(deliveredSequences(), [1, 2, 3]);
  assert.equal(deliveries[0].organization_id, organizationId);
  assert.equal(deliveries[0].first_sequence, 1);

  const { body } = await api('GET', `/organizations/${organizationId}/audit_logs/log_streams`);
  assert.deepEqual(
    body.data.map((stream) => [stream.id, stream.type, stream.state, stream.delivered_sequence]),
    [[streamId, 'GenericHttps', 'active', 3]],
  );
  await screenshot('21-streams-delivered');
});

test('"Test" sends a test delivery and says the destination accepted it', async () => {
  const before = deliveries.length;
  await streamRow().getByRole('button', { name: 'Test' }).click();
  await page
    .getByRole('status')
    .filter({ hasText: `Test delivery to ${streamId}: The destination accepted the test delivery.` })
    .waitFor();
  assert.equal(deliveries.length, before + 1);
  const tested = deliveries.at(-1);
  assert.equal(tested.test, true);
  assert.deepEqual(tested.events, []);
  assert.equal(await stateBadge().innerText(), 'active', 'a test changes nothing');
});

test('"Pause" stops delivery: the state is inactive and the lag grows', async () => {
  await streamRow().getByRole('button', { name: 'Pause' }).click();
  await page.getByRole('status').filter({ hasText: 'Log stream paused.' }).waitFor();
  assert.equal(await stateBadge().innerText(), 'inactive');
  assert.equal(await streamRow().getByRole('button', { name: 'Pause' }).count(), 0);
  await streamRow().getByRole('button', { name: 'Resume' }).waitFor();

  await addEvents(2);
  // Longer than the server's poll interval and batch wait (1 s each by default).
  await new Promise((resolve) => setTimeout(resolve, 2_500));
  await openOrganization();
  assert.equal(await lagCell().innerText(), '2 behind');
  assert.equal(await lagCell().getAttribute('data-lag'), '2');
  assert.equal(await stateBadge().innerText(), 'inactive');
  assert.deepEqual(deliveredSequences(), [1, 2, 3], 'nothing delivered while paused');
  await screenshot('22-streams-paused');
});

test('"Resume" delivers what piled up and the stream is caught up again', async () => {
  await streamRow().getByRole('button', { name: 'Resume' }).click();
  await page.getByRole('status').filter({ hasText: 'Log stream resumed.' }).waitFor();
  assert.equal(await stateBadge().innerText(), 'active');
  await reloadUntil('events 4 and 5 delivered', async () => /caught up/.test(await lagCell().innerText()));
  assert.match(await streamRow().innerText(), /up to #5\s+5 events/);
  assert.deepEqual(deliveredSequences(), [1, 2, 3, 4, 5]);
});

test('"Replay" from sequence 2 delivers events 2 to 5 again; an out-of-range one is refused', async () => {
  await streamRow().getByLabel('Replay from sequence').fill('2');
  await streamRow().getByRole('button', { name: 'Replay' }).click();
  await page
    .getByRole('status')
    .filter({ hasText: 'Replay scheduled: delivery continues from the chosen sequence.' })
    .waitFor();
  await reloadUntil('the replay delivered', async () => /9 events/.test(await streamRow().innerText()));
  assert.match(await lagCell().innerText(), /caught up/);
  assert.deepEqual(deliveredSequences(), [1, 2, 3, 4, 5, 2, 3, 4, 5]);
  const replayed = deliveries.filter((body) => !body.test).at(-1);
  assert.equal(replayed.last_sequence, 5);

  await streamRow().getByLabel('Replay from sequence').fill('99');
  await streamRow().getByRole('button', { name: 'Replay' }).click();
  await page.getByRole('alert').filter({ hasText: 'from_sequence must be between 1 and 6' }).waitFor();
  assert.match(await streamRow().innerText(), /up to #5/, 'the cursor did not move');
  await screenshot('23-streams-replay-refused');
});

test('"Delete" asks first, then removes the stream', async () => {
  // Dismissing the confirmation keeps the stream.
  page.once('dialog', (dialog) => dialog.dismiss());
  await streamRow().getByRole('button', { name: 'Delete' }).click();
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(await streamRow().count(), 1);

  let asked;
  page.once('dialog', (dialog) => {
    asked = dialog.message();
    dialog.accept();
  });
  await streamRow().getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('status').filter({ hasText: 'Log stream deleted.' }).waitFor();
  assert.equal(asked, 'Delete this log stream?');
  await page.getByText('No log streams yet.').waitFor();
  assert.equal(await streamRow().count(), 0);
  const { body } = await api('GET', `/organizations/${organizationId}/audit_logs/log_streams`);
  assert.deepEqual(body.data, []);
  await screenshot('24-streams-deleted');
});
