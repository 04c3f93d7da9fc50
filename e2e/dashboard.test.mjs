// The dashboard in a real browser: sign in, define an action, evolve its schema through
// "Edit Event" with the review panel, save version 2, compare versions, and the security
// rules (no session means the login page; no CSRF token means refused). The steps share
// one browser and run in order; each saves a screenshot of its page to screenshots/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ADMIN_PASSWORD, BASE, SCREENSHOTS, api, openBrowser } from './support.mjs';

// A fresh server gets the plain name (it shows in the README's screenshots); a server that
// has seen this suite before gets a unique one, so reruns pass too.
let ACTION = 'document.shared';
let ACTION_PATH = encodeURIComponent(ACTION);

let context;
let page;
let browser;
let organizationId;
let rejectedEventId;

async function screenshot(name) {
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

before(async () => {
  browser = await openBrowser('stele-e2e-chromium-');
  ({ context, page } = browser);
  if ((await api('GET', `/audit_logs/actions/${ACTION_PATH}/schemas`)).status !== 404) {
    ACTION = `document.shared.${Date.now().toString(36)}`;
    ACTION_PATH = encodeURIComponent(ACTION);
  }
});

after(async () => {
  await browser?.close();
});

test('a request without a session is redirected to the login page', async () => {
  const response = await page.goto(`${BASE}/dashboard/actions`);
  assert.equal(response.status(), 200);
  const url = new URL(page.url());
  assert.equal(url.pathname, '/dashboard/login');
  assert.equal(url.searchParams.get('next'), '/dashboard/actions');
  await page.getByRole('heading', { name: 'Sign in to Stele' }).waitFor();
  await screenshot('01-login');
});

test('a wrong password is refused and the right one signs in', async () => {
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('Wrong username or password.').waitFor();

  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill(ADMIN_PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${BASE}/dashboard/actions`);
  await page.getByRole('heading', { name: 'Audit Logs configuration' }).waitFor();
  const cookies = await context.cookies(`${BASE}/dashboard/actions`);
  const session = cookies.find((cookie) => cookie.name === 'stele_session');
  assert.ok(session, 'session cookie set');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Lax');
});

test('creates an action with "Create event"', async () => {
  await page.getByRole('link', { name: 'Create event' }).click();
  await page.getByLabel('Event name').fill(ACTION);
  await page.getByLabel('Target types').fill('document');
  await page
    .getByLabel('Event metadata JSON Schema')
    .fill(JSON.stringify({ type: 'object', properties: { channel: { type: 'string' } } }, null, 2));
  await screenshot('02-create-event');
  await page.getByRole('button', { name: 'Create event' }).click();
  await page.waitForURL(`${BASE}/dashboard/actions/${ACTION_PATH}/versions/1?created=1`);
  await page.getByText('is now at version 1').waitFor();

  const { status, body } = await api('GET', `/audit_logs/actions/${ACTION_PATH}/schemas`);
  assert.equal(status, 200);
  assert.equal(body.data.length, 1);
  assert.deepEqual(body.data[0].targets, [{ type: 'document' }]);
});

test('stores, through the API, an event that the next version will reject', async () => {
  const organization = await api('POST', '/organizations', { name: `E2E ${ACTION}` });
  assert.equal(organization.status, 201);
  organizationId = organization.body.id;
  const created = await api('POST', '/audit_logs/events', {
    organization_id: organizationId,
    event: {
      action: ACTION,
      occurred_at: new Date().toISOString(),
      actor: { id: 'user_01GBNJC3MX9ZZJW1FSTF4C5938', type: 'user' },
      targets: [{ id: 'document_1', type: 'document' }],
      context: { location: '123.123.123.123' },
      metadata: { channel: 'email' },
    },
  });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  rejectedEventId = created.body.id;

  // The seed's two versions of user.signed_in, so the configuration page has company
  // (only on a server that does not have it yet).
  const seeded = await api('GET', '/audit_logs/actions/user.signed_in/schemas');
  const seedVersions = seeded.status === 404 ? [
    { targets: [{ type: 'team' }] },
    {
      targets: [
        { type: 'team', metadata: { type: 'object', properties: { owner: { type: 'string' } } } },
        { type: 'resource' },
      ],
      actor: { metadata: { type: 'object', properties: { role: { type: 'string' } } } },
      metadata: { type: 'object', properties: { environment: { type: 'string' } } },
    },
  ] : [];
  for (const definition of seedVersions) {
    const schema = await api('POST', '/audit_logs/actions/user.signed_in/schemas', definition);
    assert.ok([200, 201].includes(schema.status), JSON.stringify(schema.body));
  }
});

test('the configuration page lists the action with its latest version', async () => {
  await page.goto(`${BASE}/dashboard/actions`);
  const row = page.locator(`tr[data-action="${ACTION}"]`);
  await row.waitFor();
  assert.match(await row.innerText(), /v1/);
  assert.match(await row.innerText(), /document/);
  assert.match(await row.innerText(), /event/);
  const seeded = page.locator('tr[data-action="user.signed_in"]');
  assert.match(await seeded.innerText(), /target: team/);
  await screenshot('03-configuration');
});

test('opens "Edit Event" from the row\'s context menu with the keyboard', async () => {
  const menuButton = page.locator(`tr[data-action="${ACTION}"] summary`);
  await menuButton.focus();
  await page.keyboard.press('Enter');
  const menu = page.locator(`tr[data-action="${ACTION}"] details.menu ul`);
  await menu.waitFor();
  const items = await menu.getByRole('link').allInnerTexts();
  assert.deepEqual(items, ['Edit Event', 'Version history']);
  await screenshot('04-context-menu');
  const editLink = menu.getByRole('link', { name: 'Edit Event' });
  await editLink.focus();
  await page.keyboard.press('Enter');
  await page.waitForURL(`${BASE}/dashboard/actions/${ACTION_PATH}/edit`);
  await page.getByRole('heading', { name: `Edit Event ${ACTION}` }).waitFor();
  // Prefilled from version 1.
  const prefilled = JSON.parse(await page.locator('#event_metadata').inputValue());
  assert.deepEqual(prefilled.properties, { channel: { type: 'string' } });
});

test('one review shows every field\'s errors at once', async () => {
  const eventMetadata = await page.locator('#event_metadata').inputValue();
  // A JSON syntax error in one field, JSON Schema errors in two others.
  await page.locator('#actor_metadata').fill('{"type": "object",');
  await page.locator('#event_metadata').fill('{"type": "objekt"}');
  await page
    .locator('#target_metadata_0')
    .fill('{"type": "object", "properties": {"owner": {"type": "strin"}}}');
  await page.getByRole('button', { name: 'Review changes' }).last().click();
  // Only the server says this (the page's own check of the JSON runs while typing).
  await page.getByText('Fix the highlighted fields, then review again.').waitFor();

  assert.match(await page.locator('#actor_metadata-status').innerText(), /^Not valid JSON at line 1/);
  assert.match(
    await page.locator('#event_metadata-status').innerText(),
    /^metadata is not a valid JSON Schema/,
  );
  assert.match(
    await page.locator('#target_metadata_0-status').innerText(),
    /^targets\[0\]\.metadata is not a valid JSON Schema/,
  );
  assert.equal(await page.locator('.json-editor.invalid').count(), 3, 'each broken field is marked');
  assert.equal(await page.locator('section.review').count(), 0, 'no review while a field is broken');
  await screenshot('05-edit-event-field-errors');

  await page.locator('#actor_metadata').fill('');
  await page.locator('#target_metadata_0').fill('');
  await page.locator('#event_metadata').fill(eventMetadata);
});

test('changes a metadata schema and reviews the diff, verdict and impact', async () => {
  await page.locator('#event_metadata').fill(
    JSON.stringify(
      {
        type: 'object',
        properties: { channel: { type: 'string', enum: ['slack', 'email'] } },
      },
      null,
      2,
    ),
  );
  // The property builder adds a required property to the same schema.
  await page.locator('select[name="builder_schema"]').selectOption('metadata');
  await page.locator('input[name="builder_name"]').fill('priority');
  await page.locator('select[name="builder_type"]').selectOption('number');
  await page.locator('input[name="builder_required"]').check();
  await page.getByRole('button', { name: 'Add property' }).click();
  await page.getByText("Added required property 'priority' (number)").waitFor();
  const built = JSON.parse(await page.locator('#event_metadata').inputValue());
  assert.deepEqual(built.required, ['priority']);

  await page.getByPlaceholder('New target type').fill('folder');
  await page.getByRole('button', { name: 'Add target type' }).click();
  await page.getByText("Added target type 'folder'").waitFor();

  await page.getByRole('button', { name: 'Review changes' }).last().click();
  const review = page.locator('section.review');
  await review.waitFor();
  await review.scrollIntoViewIfNeeded();
  const text = await review.innerText();
  assert.match(text, /Breaking/);
  assert.match(text, /Saving creates version 2/);
  assert.match(text, /\/metadata\/required/);
  assert.match(text, /new required property 'priority'/);
  assert.match(text, /\/metadata\/properties\/channel\/enum/);
  assert.match(text, /\/targets\/folder/);
  assert.match(text, /1\s+that version 1 accepts would fail version 2/);
  assert.ok(text.includes(rejectedEventId), 'the failing event is shown as an example');
  assert.match(text, /"priority" is a required property/);
  await screenshot('05-edit-event-review');
  await review.screenshot({ path: path.join(SCREENSHOTS, '05-edit-event-review-panel.png') });
});

test('saves version 2 and shows it on the page and through the API', async () => {
  await page.getByRole('button', { name: 'Save as version 2' }).click();
  await page.waitForURL(`${BASE}/dashboard/actions/${ACTION_PATH}/versions/2?created=1`);
  await page.getByText('is now at version 2').waitFor();
  const curl = await page.locator('pre[data-snippet="curl"]').innerText();
  assert.match(curl, /"version": 2/);
  assert.match(await page.locator('pre[data-snippet="node"]').innerText(), /"version": 2/);
  assert.match(await page.locator('pre[data-snippet="python"]').innerText(), /"version": 2/);
  await screenshot('06-version-2-saved');

  const { status, body } = await api('GET', `/audit_logs/actions/${ACTION_PATH}/schemas`);
  assert.equal(status, 200);
  assert.equal(body.data[0].version, 2);
  assert.deepEqual(body.data[0].metadata.required, ['priority']);
  assert.deepEqual(
    body.data[0].targets.map((target) => target.type),
    ['document', 'folder'],
  );

  await page.goto(`${BASE}/dashboard/actions`);
  assert.match(await page.locator(`tr[data-action="${ACTION}"]`).innerText(), /v2/);
});

test('version history shows the author and a side-by-side diff', async () => {
  await page.locator(`tr[data-action="${ACTION}"] summary`).click();
  await page.locator(`tr[data-action="${ACTION}"]`).getByRole('link', { name: 'Version history' }).click();
  await page.waitForURL(`${BASE}/dashboard/actions/${ACTION_PATH}/versions`);
  const versions = page.getByRole('table', { name: 'Versions' });
  assert.match(await versions.innerText(), /user admin/);
  const diff = page.locator('table.side-by-side');
  await diff.waitFor();
  assert.ok((await diff.locator('tr.added, tr.changed').count()) > 0, 'the diff marks changed lines');
  assert.match(await diff.innerText(), /"priority"/);
  await screenshot('07-version-history');
});

test('a form post without the CSRF token is refused', async () => {
  const name = `No token ${ACTION}`;
  const refused = await page.request.post(`${BASE}/dashboard/organizations`, {
    form: { name },
    maxRedirects: 0,
  });
  assert.equal(refused.status(), 403);
  assert.match(await refused.text(), /security token/);
  const wrong = await page.request.post(`${BASE}/dashboard/organizations`, {
    form: { name, csrf_token: 'forged' },
    maxRedirects: 0,
  });
  assert.equal(wrong.status(), 403);
  const { body } = await api('GET', `/organizations?search=${encodeURIComponent(name)}`);
  assert.equal(body.data.length, 0, 'nothing was created');
});

test('organizations: list and create', async () => {
  await page.getByRole('link', { name: 'Organizations' }).click();
  await page.getByRole('heading', { name: 'Organizations' }).waitFor();
  await page.getByLabel('Name').fill('Globex');
  await page.getByLabel('Domains').fill('globex.example');
  await page.getByRole('button', { name: 'Create organization' }).click();
  await page.getByText('Created organization').waitFor();
  assert.match(await page.getByRole('table', { name: 'Organizations' }).innerText(), /Globex/);
  await screenshot('08-organizations');
});

test('API keys: the secret is shown once, works, and stops working when revoked', async () => {
  await page.getByRole('link', { name: 'API keys' }).click();
  await page.getByLabel('Name').fill('e2e-key');
  await page.getByRole('button', { name: 'Create API key' }).click();
  const secret = (await page.locator('#new-secret').innerText()).trim();
  assert.match(secret, /^sk_/);
  await screenshot('09-api-keys');
  const ok = await fetch(`${BASE}/organizations`, { headers: { Authorization: `Bearer ${secret}` } });
  assert.equal(ok.status, 200);

  await page.goto(`${BASE}/dashboard/api-keys`);
  assert.equal(await page.locator('#new-secret').count(), 0, 'the secret is not shown again');
  page.once('dialog', (dialog) => dialog.accept());
  const row = page.getByRole('row').filter({ hasText: 'e2e-key' });
  await row.getByRole('button', { name: 'Revoke' }).click();
  await page.getByRole('status').filter({ hasText: 'Revoked' }).waitFor();
  const refused = await fetch(`${BASE}/organizations`, { headers: { Authorization: `Bearer ${secret}` } });
  assert.equal(refused.status, 401);
});

test('at phone width (390 px) the top bar wraps and Sign out stays on-screen', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  try {
    await page.goto(`${BASE}/dashboard/actions`);
    const viewport = page.viewportSize();
    for (const control of [
      page.getByRole('button', { name: 'Sign out' }),
      page.getByRole('link', { name: 'API keys' }),
    ]) {
      const box = await control.boundingBox();
      assert.ok(box, 'the control is rendered');
      assert.ok(box.x >= 0 && box.x + box.width <= viewport.width, `within the width: ${JSON.stringify(box)}`);
      assert.ok(box.y >= 0 && box.y + box.height <= viewport.height, `within the height: ${JSON.stringify(box)}`);
    }
    const overflow = await page.evaluate(() => document.querySelector('.topbar').scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the top bar does not overflow the page (${overflow} px)`);
    await page.screenshot({ path: path.join(SCREENSHOTS, '10-phone-width.png') });
  } finally {
    await page.setViewportSize({ width: 1366, height: 900 });
  }
});

test('signing out ends the session', async () => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/\/dashboard\/login/);
  await page.goto(`${BASE}/dashboard/organizations`);
  assert.equal(new URL(page.url()).pathname, '/dashboard/login');
});
