// Compatibility suite: the official WorkOS Node SDK (@workos-inc/node 11) against Stele.
//
// Run through ./run.sh, which needs STELE_HOST, STELE_PORT and STELE_API_KEY pointing at a
// freshly started server (the seed flow expects the action `user.signed_in` not to exist yet).
// Everything lives in one top-level describe so that the blocks run in order, one at a time.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  WorkOS,
  BadRequestException,
  GenericServerException,
  NotFoundException,
  UnauthorizedException,
  UnprocessableEntityException,
} from '@workos-inc/node';

const HOST = process.env.STELE_HOST;
const PORT = process.env.STELE_PORT;
const API_KEY = process.env.STELE_API_KEY;
if (!HOST || !PORT || !API_KEY) {
  throw new Error('STELE_HOST, STELE_PORT and STELE_API_KEY must be set (use ./run.sh)');
}
const BASE_URL = `http://${HOST}:${PORT}`;

// The SDK exactly as an application would configure it (default retries and idempotency keys).
const workos = new WorkOS(API_KEY, {
  apiHostname: HOST,
  port: Number(PORT),
  https: false,
  timeout: 20_000,
});

const RUN = randomUUID().slice(0, 8);
const unique = (label) => `${label}-${RUN}-${randomUUID().slice(0, 6)}`;

const ULID = '[0-9A-HJKMNP-TV-Z]{26}';
const ORG_ID = new RegExp(`^org_${ULID}$`);
const ORG_DOMAIN_ID = new RegExp(`^org_domain_${ULID}$`);
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
// A well-formed organization id that no server has issued.
const MISSING_ORG_ID = 'org_01H0000000000000000000000Z';

const ACTION = 'user.signed_in';

/** Asserts that `promise` rejects with the SDK's typed exception `Cls` and HTTP `status`. */
async function expectSdkError(promise, Cls, status, check) {
  let caught;
  await assert.rejects(promise, (err) => {
    caught = err;
    return true;
  });
  const describeErr = (e) =>
    `${e?.name}: ${e?.message} (status ${e?.status}, code ${e?.code}, rawData ${JSON.stringify(e?.rawData ?? e?.errors)})`;
  assert.ok(caught instanceof Cls, `expected ${Cls.name}, got ${describeErr(caught)}`);
  assert.equal(caught.name, Cls.name);
  assert.equal(caught.status, status, describeErr(caught));
  assert.equal(typeof caught.requestID, 'string');
  assert.notEqual(caught.requestID, '', 'error carries the X-Request-ID header value');
  if (check) check(caught);
  return caught;
}

function assertOrganizationShape(org) {
  assert.equal(org.object, 'organization');
  assert.match(org.id, ORG_ID);
  assert.equal(typeof org.name, 'string');
  assert.ok(Array.isArray(org.domains), 'domains is an array');
  assert.equal(org.allowProfilesOutsideOrganization, false);
  assert.match(org.createdAt, TIMESTAMP);
  assert.match(org.updatedAt, TIMESTAMP);
  assert.ok('externalId' in org);
  assert.equal(typeof org.metadata, 'object');
  assert.notEqual(org.metadata, null);
}

/** Walks every page of listOrganizations with a small page size; returns all ids. */
async function listAllOrganizationIds(limit) {
  const ids = [];
  let cursor;
  for (let page = 0; page < 500; page++) {
    const res = await workos.organizations.listOrganizations({ limit, ...(cursor ? { after: cursor } : {}) });
    assert.ok(res.data.length <= limit, `page holds at most ${limit} items, got ${res.data.length}`);
    for (const org of res.data) ids.push(org.id);
    assert.ok(res.listMetadata && 'after' in res.listMetadata, 'list_metadata.after is present');
    cursor = res.listMetadata.after;
    if (!cursor) return ids;
  }
  assert.fail('pagination did not terminate after 500 pages');
}

function seedEventV2() {
  // The exact Node payload from the WorkOS versioning guide.
  return {
    action: 'user.signed_in',
    version: 2,
    occurredAt: new Date(),
    actor: {
      type: 'user',
      id: 'user_01GBNJC3MX9ZZJW1FSTF4C5938',
    },
    targets: [
      {
        type: 'team',
        id: 'team_01GBNJD4MKHVKJGEWK42JNMBGS',
      },
      {
        type: 'resource',
        id: 'resource_01GBTAX2J37BAMB2D8GYDR2CC6',
      },
    ],
    context: {
      location: '123.123.123.123',
      userAgent: 'Chrome/104.0.0.0',
    },
  };
}

function eventV1() {
  return {
    action: ACTION,
    occurredAt: new Date(),
    actor: { type: 'user', id: 'user_01GBNJC3MX9ZZJW1FSTF4C5938', name: 'Jon Smith' },
    targets: [{ type: 'team', id: 'team_01GBNJD4MKHVKJGEWK42JNMBGS', name: 'Team A' }],
    context: { location: '123.123.123.123' },
  };
}

// ---- exports, retention and configuration helpers ----

const EXPORT_ID = new RegExp(`^audit_log_export_${ULID}$`);
const EVENT_ID = new RegExp(`^audit_log_event_${ULID}$`);
const CSV_COLUMNS = [
  'id',
  'organization_id',
  'sequence',
  'version',
  'action',
  'occurred_at',
  'received_at',
  'actor_id',
  'actor_type',
  'actor_name',
  'actor_metadata',
  'targets',
  'context_location',
  'context_user_agent',
  'metadata',
];
// WorkOS's per-target column groups follow Stele's own columns (a fixed number of groups).
const CSV_TARGET_GROUPS = 10;
for (let n = 1; n <= CSV_TARGET_GROUPS; n += 1) {
  for (const field of ['id', 'type', 'name', 'metadata']) CSV_COLUMNS.push(`target_${field}_${n}`);
}
/** The per-target cells of a row: id, type, name and canonical JSON metadata, '' when absent. */
function targetColumns(targets) {
  const cells = {};
  const canonical = (m) => JSON.stringify(Object.fromEntries(Object.entries(m).sort(([a], [b]) => (a < b ? -1 : 1))));
  for (let n = 1; n <= CSV_TARGET_GROUPS; n += 1) {
    const t = targets[n - 1] ?? {};
    cells[`target_id_${n}`] = t.id ?? '';
    cells[`target_type_${n}`] = t.type ?? '';
    cells[`target_name_${n}`] = t.name ?? '';
    cells[`target_metadata_${n}`] = t.metadata != null ? canonical(t.metadata) : '';
  }
  return cells;
}
const JSON_COLUMNS = new Set(['actor_metadata', 'targets', 'metadata']);

// A second SDK client, identical but for a fetchFn that records what the SDK sends, so tests
// can assert the HTTP request behind each SDK method (the return values hide it).
const exchanges = [];
const wired = new WorkOS(API_KEY, {
  apiHostname: HOST,
  port: Number(PORT),
  https: false,
  timeout: 20_000,
  fetchFn: async (url, init = {}) => {
    const res = await fetch(url, init);
    exchanges.push({
      method: init.method,
      url: new URL(String(url)),
      headers: Object.fromEntries(Object.entries(init.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v])),
      body: typeof init.body === 'string' && init.body !== '' ? JSON.parse(init.body) : undefined,
      status: res.status,
    });
    return res;
  },
});
const lastExchange = () => {
  assert.ok(exchanges.length > 0, 'no HTTP exchange was recorded');
  return exchanges[exchanges.length - 1];
};

/** Drops null/undefined members recursively (absent and null are the same in a JSON cell). */
function stripNulls(value) {
  if (Array.isArray(value)) return value.map(stripNulls);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== null && v !== undefined)
        .map(([k, v]) => [k, stripNulls(v)]),
    );
  }
  return value;
}

/** RFC 4180 CSV: quoted fields may hold commas, doubled quotes and line breaks. */
function parseCsvRecords(text) {
  const records = [];
  let record = [];
  let field = '';
  let quoted = false;
  let fieldStarted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c === '"' && field === '') {
      quoted = true;
      fieldStarted = true;
    } else if (c === ',') {
      record.push(field);
      field = '';
      fieldStarted = true;
    } else if (c === '\n' || (c === '\r' && text[i + 1] === '\n')) {
      if (c === '\r') i++;
      record.push(field);
      records.push(record);
      record = [];
      field = '';
      fieldStarted = false;
    } else {
      field += c;
      fieldStarted = true;
    }
  }
  assert.equal(quoted, false, 'CSV ends inside a quoted field');
  if (fieldStarted || record.length > 0) {
    record.push(field);
    records.push(record);
  }
  return records;
}

/** Header must be exactly CSV_COLUMNS; returns rows as objects with JSON columns parsed. */
function parseExportCsv(text) {
  const [header, ...records] = parseCsvRecords(text);
  assert.deepEqual(header, CSV_COLUMNS);
  return records.map((cells) => {
    assert.equal(cells.length, CSV_COLUMNS.length, `row has ${cells.length} cells: ${JSON.stringify(cells)}`);
    const row = {};
    CSV_COLUMNS.forEach((col, i) => {
      row[col] = JSON_COLUMNS.has(col) ? (cells[i] === '' ? null : stripNulls(JSON.parse(cells[i]))) : cells[i];
    });
    return row;
  });
}

/** Plain HTTP GET of a download link: global fetch, no Authorization header. */
async function download(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(20_000) });
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', text: await res.text() };
}

/** getExport until the export is ready (it may start pending); returns the ready export. */
async function waitUntilReady(sdk, exportId) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const exp = await sdk.auditLogs.getExport(exportId);
    assert.equal(exp.object, 'audit_log_export');
    assert.equal(exp.id, exportId);
    assert.ok(['pending', 'ready'].includes(exp.state), `state ${exp.state}`);
    if (exp.state === 'ready') {
      assert.equal(typeof exp.url, 'string', 'a ready export has a url');
      assert.match(exp.url, /^https?:\/\//);
      return exp;
    }
    assert.ok(exp.url == null, 'url is set only once ready');
    assert.ok(Date.now() < deadline, `export ${exportId} not ready after 30s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function exportRows(exportId) {
  const ready = await waitUntilReady(workos, exportId);
  const got = await download(ready.url);
  assert.equal(got.status, 200, got.text);
  assert.match(got.contentType, /^text\/csv/);
  return parseExportCsv(got.text);
}

/** Stele extension GET /audit_logs/events (no SDK method): the SDK's generic workos.get. */
async function searchEvents(query) {
  const out = [];
  let after;
  for (let page = 0; page < 100; page++) {
    const { data } = await workos.get('/audit_logs/events', {
      query: { order: 'asc', limit: 100, ...query, ...(after ? { after } : {}) },
    });
    assert.equal(data.object, 'list');
    out.push(...data.data);
    after = data.list_metadata.after;
    if (!after) return out;
  }
  assert.fail('search pagination did not terminate');
}

// Fail fast with one readable failure instead of every test waiting out the SDK's retries.
let unreachable = null;
try {
  await fetch(`${BASE_URL}/organizations`, {
    headers: { Authorization: `Bearer ${API_KEY}` },
    signal: AbortSignal.timeout(5_000),
  });
} catch (err) {
  unreachable = `cannot reach Stele at ${BASE_URL}: ${err?.cause?.code ?? err?.cause?.message ?? err.message}`;
}

if (unreachable) {
  test('Stele server is reachable', () => assert.fail(unreachable));
} else describe('Stele with @workos-inc/node 11', { timeout: 300_000 }, () => {

  describe('organizations', () => {
    const externalId = unique('ext');
    let org;

    test('createOrganization returns a complete organization object', async () => {
      const name = unique('Acme');
      org = await workos.organizations.createOrganization({
        name,
        externalId,
        metadata: { tier: 'gold' },
      });
      assertOrganizationShape(org);
      assert.equal(org.name, name);
      assert.deepEqual(org.domains, []);
      assert.equal(org.externalId, externalId);
      assert.deepEqual(org.metadata, { tier: 'gold' });
    });

    test('createOrganization without external_id gives externalId null and empty metadata', async () => {
      const created = await workos.organizations.createOrganization({ name: unique('NoExt') });
      assertOrganizationShape(created);
      assert.equal(created.externalId, null);
      assert.deepEqual(created.metadata, {});
      assert.notEqual(created.id, org.id);
    });

    test('createOrganization with domainData returns organization_domain objects', async () => {
      const domain = `${RUN}-${randomUUID().slice(0, 6)}.example.com`;
      const created = await workos.organizations.createOrganization({
        name: unique('Domains'),
        domainData: [{ domain, state: 'verified' }],
      });
      assertOrganizationShape(created);
      assert.equal(created.domains.length, 1);
      const [d] = created.domains;
      assert.equal(d.object, 'organization_domain');
      assert.match(d.id, ORG_DOMAIN_ID);
      assert.equal(d.domain, domain);
      assert.equal(d.organizationId, created.id);
      assert.equal(d.state, 'verified');
      assert.match(d.createdAt, TIMESTAMP);
      assert.match(d.updatedAt, TIMESTAMP);
    });

    test('createOrganization without a name is rejected with 422', async () => {
      await expectSdkError(
        workos.organizations.createOrganization({}),
        UnprocessableEntityException,
        422,
      );
    });

    test('getOrganization returns the stored organization', async () => {
      const got = await workos.organizations.getOrganization(org.id);
      assertOrganizationShape(got);
      assert.equal(got.id, org.id);
      assert.equal(got.name, org.name);
      assert.equal(got.externalId, externalId);
      assert.deepEqual(got.metadata, { tier: 'gold' });
      assert.equal(got.createdAt, org.createdAt);
    });

    test('getOrganization of an unknown id throws NotFoundException', async () => {
      await expectSdkError(workos.organizations.getOrganization(MISSING_ORG_ID), NotFoundException, 404);
    });

    test('getOrganizationByExternalId finds the organization', async () => {
      const got = await workos.organizations.getOrganizationByExternalId(externalId);
      assertOrganizationShape(got);
      assert.equal(got.id, org.id);
      assert.equal(got.externalId, externalId);
    });

    test('getOrganizationByExternalId of an unknown external id throws NotFoundException', async () => {
      await expectSdkError(
        workos.organizations.getOrganizationByExternalId(unique('nobody')),
        NotFoundException,
        404,
      );
    });

    test('listOrganizations paginates with limit and after cursors', async () => {
      const created = [];
      for (let i = 0; i < 3; i++) {
        created.push((await workos.organizations.createOrganization({ name: unique(`List${i}`) })).id);
      }
      const first = await workos.organizations.listOrganizations({ limit: 2 });
      assert.equal(first.object, 'list');
      assert.equal(first.data.length, 2, 'limit=2 returns exactly two organizations when more exist');
      first.data.forEach(assertOrganizationShape);
      assert.equal(typeof first.listMetadata.after, 'string', 'a further page exists');

      const ids = await listAllOrganizationIds(2);
      assert.equal(new Set(ids).size, ids.length, 'no organization appears twice across pages');
      for (const id of [org.id, ...created]) assert.ok(ids.includes(id), `${id} is listed`);

      // Default order is descending (newest first): the three just created appear newest first.
      const positions = created.map((id) => ids.indexOf(id));
      assert.deepEqual([...positions].sort((a, b) => b - a), positions, 'newest first');

      // The SDK's auto-pagination (limit=100, stops when after is null) sees them too.
      const all = await (await workos.organizations.listOrganizations()).autoPagination();
      const allIds = all.map((o) => o.id);
      for (const id of [org.id, ...created]) assert.ok(allIds.includes(id), `${id} is auto-paginated`);
      assert.equal(new Set(allIds).size, allIds.length);
    });

    test('updateOrganization changes name, external id and metadata', async () => {
      const newName = unique('Renamed');
      const newExternalId = unique('ext2');
      const updated = await workos.organizations.updateOrganization({
        organization: org.id,
        name: newName,
        externalId: newExternalId,
        metadata: { tier: 'platinum', region: 'eu' },
      });
      assertOrganizationShape(updated);
      assert.equal(updated.id, org.id);
      assert.equal(updated.name, newName);
      assert.equal(updated.externalId, newExternalId);
      assert.deepEqual(updated.metadata, { tier: 'platinum', region: 'eu' });
      assert.equal(updated.createdAt, org.createdAt);
      assert.ok(Date.parse(updated.updatedAt) >= Date.parse(org.updatedAt), 'updatedAt does not go back');

      const got = await workos.organizations.getOrganization(org.id);
      assert.equal(got.name, newName);
      const byExt = await workos.organizations.getOrganizationByExternalId(newExternalId);
      assert.equal(byExt.id, org.id);
      await expectSdkError(
        workos.organizations.getOrganizationByExternalId(externalId),
        NotFoundException,
        404,
      );
    });

    test('updateOrganization is partial: one field at a time, the others unchanged', async () => {
      const name = unique('Partial');
      const externalId = unique('ext-partial');
      const fresh = await workos.organizations.createOrganization({ name, externalId, metadata: { tier: 'gold' } });

      let updated = await wired.organizations.updateOrganization({ organization: fresh.id, metadata: { tier: 'platinum' } });
      assert.deepEqual(lastExchange().body, { metadata: { tier: 'platinum' } }, 'the SDK sends only the field given');
      assert.deepEqual([updated.name, updated.externalId, updated.metadata], [name, externalId, { tier: 'platinum' }]);

      updated = await wired.organizations.updateOrganization({ organization: fresh.id, name: `${name} renamed` });
      assert.deepEqual(
        [updated.name, updated.externalId, updated.metadata],
        [`${name} renamed`, externalId, { tier: 'platinum' }],
      );

      updated = await wired.organizations.updateOrganization({ organization: fresh.id, externalId: `${externalId}-new` });
      assert.deepEqual(
        [updated.name, updated.externalId, updated.metadata],
        [`${name} renamed`, `${externalId}-new`, { tier: 'platinum' }],
      );

      updated = await wired.organizations.updateOrganization({ organization: fresh.id, externalId: null });
      assert.deepEqual(lastExchange().body, { external_id: null }, 'null is sent as null');
      assert.equal(updated.externalId, null, 'null clears external_id');
      assert.equal(updated.name, `${name} renamed`);
    });

    test('stripeCustomerId is stored and returned (create omits it; update sets it)', async () => {
      const fresh = await workos.organizations.createOrganization({ name: unique('Billing') });
      assert.equal(fresh.stripeCustomerId, undefined, 'absent until set, as WorkOS');
      const updated = await wired.organizations.updateOrganization({ organization: fresh.id, stripeCustomerId: 'cus_node_sdk' });
      assert.deepEqual(lastExchange().body, { stripe_customer_id: 'cus_node_sdk' });
      assert.equal(updated.stripeCustomerId, 'cus_node_sdk');
      const got = await workos.organizations.getOrganization(fresh.id);
      assert.equal(got.stripeCustomerId, 'cus_node_sdk');
    });

    test('updateOrganization of an unknown id throws NotFoundException', async () => {
      await expectSdkError(
        workos.organizations.updateOrganization({ organization: MISSING_ORG_ID, name: 'x' }),
        NotFoundException,
        404,
      );
    });

    test('deleteOrganization succeeds, then the organization is gone', async () => {
      const result = await workos.organizations.deleteOrganization(org.id);
      assert.equal(result, undefined);
      await expectSdkError(workos.organizations.getOrganization(org.id), NotFoundException, 404);
      await expectSdkError(workos.organizations.deleteOrganization(org.id), NotFoundException, 404);
    });
  });

  describe('schema versioning (seed flow)', () => {
    const v2Definition = {
      action: ACTION,
      targets: [{ type: 'team' }, { type: 'resource', metadata: { size: 'number' } }],
      actor: { metadata: { role: 'string' } },
      metadata: { environment: 'string', dry_run: 'boolean' },
    };

    function assertV2(schema) {
      assert.equal(schema.object, 'audit_log_schema');
      assert.equal(schema.version, 2);
      assert.deepEqual(
        schema.targets.map((t) => [t.type, t.metadata ?? null]),
        [
          ['team', null],
          ['resource', { size: 'number' }],
        ],
      );
      // Node rebuilds its shorthand from the returned JSON Schema's properties[k].type.
      assert.deepEqual(schema.actor?.metadata, { role: 'string' });
      assert.deepEqual(schema.metadata, { environment: 'string', dry_run: 'boolean' });
      assert.match(schema.createdAt, TIMESTAMP);
    }

    test('a fresh server has no schemas for user.signed_in (listSchemas throws NotFoundException)', async () => {
      await expectSdkError(workos.auditLogs.listSchemas(ACTION), NotFoundException, 404);
    });

    test('createSchema v1: targets team', async () => {
      const v1 = await workos.auditLogs.createSchema({ action: ACTION, targets: [{ type: 'team' }] });
      assert.equal(v1.object, 'audit_log_schema');
      assert.equal(v1.version, 1);
      assert.deepEqual(
        v1.targets.map((t) => [t.type, t.metadata ?? null]),
        [['team', null]],
      );
      // Node sent actor.metadata with empty properties: it comes back absent or as empty shorthand.
      assert.ok(
        v1.actor === undefined || JSON.stringify(v1.actor.metadata) === '{}',
        `actor is absent or has empty metadata, got ${JSON.stringify(v1.actor)}`,
      );
      assert.ok(v1.metadata === undefined || JSON.stringify(v1.metadata) === '{}');
      assert.match(v1.createdAt, TIMESTAMP);
    });

    test('createSchema v2: targets team and resource, shorthand metadata round-trips', async () => {
      const v2 = await workos.auditLogs.createSchema(v2Definition);
      assertV2(v2);
    });

    test('re-submitting the v2 definition returns version 2 and creates nothing', async () => {
      const again = await workos.auditLogs.createSchema(v2Definition);
      assertV2(again);
      // Same definition with keys and shorthand entries in another order: still equal.
      const reordered = await workos.auditLogs.createSchema({
        metadata: { dry_run: 'boolean', environment: 'string' },
        actor: { metadata: { role: 'string' } },
        targets: [{ type: 'team' }, { metadata: { size: 'number' }, type: 'resource' }],
        action: ACTION,
      });
      assert.equal(reordered.version, 2);
      const list = await workos.auditLogs.listSchemas(ACTION);
      assert.deepEqual(
        list.data.map((s) => s.version),
        [2, 1],
      );
    });

    test('listSchemas returns versions newest first, with pagination and order', async () => {
      const list = await workos.auditLogs.listSchemas(ACTION);
      assert.equal(list.object, 'list');
      assert.deepEqual(
        list.data.map((s) => s.version),
        [2, 1],
      );
      assertV2(list.data[0]);
      assert.deepEqual(list.data[1].targets.map((t) => t.type), ['team']);
      assert.equal(list.listMetadata.after ?? null, null, 'no further page');

      const page1 = await workos.auditLogs.listSchemas(ACTION, { limit: 1 });
      assert.deepEqual(page1.data.map((s) => s.version), [2]);
      assert.equal(typeof page1.listMetadata.after, 'string', 'cursor to the next page');
      const page2 = await workos.auditLogs.listSchemas(ACTION, { limit: 1, after: page1.listMetadata.after });
      assert.deepEqual(page2.data.map((s) => s.version), [1]);
      assert.equal(page2.listMetadata.after ?? null, null);

      const asc = await workos.auditLogs.listSchemas(ACTION, { order: 'asc' });
      assert.deepEqual(asc.data.map((s) => s.version), [1, 2]);

      const all = await (await workos.auditLogs.listSchemas(ACTION)).autoPagination();
      assert.deepEqual(all.map((s) => s.version), [2, 1]);
    });

    test('listSchemas of an unknown action throws NotFoundException', async () => {
      await expectSdkError(workos.auditLogs.listSchemas(`never.${RUN}`), NotFoundException, 404);
    });

    test('list actions (no SDK method in 11.x: raw GET through the SDK client)', async () => {
      const { data } = await workos.get('/audit_logs/actions', { query: { limit: 100 } });
      assert.equal(data.object, 'list');
      assert.ok(Array.isArray(data.data));
      assert.ok(data.list_metadata && 'after' in data.list_metadata);
      const action = data.data.find((a) => a.name === ACTION);
      assert.ok(action, `${ACTION} is listed: ${JSON.stringify(data.data.map((a) => a.name))}`);
      assert.equal(action.object, 'audit_log_action');
      assert.equal(action.schema.object, 'audit_log_schema');
      assert.equal(action.schema.version, 2, 'schema is the latest version');
      assert.match(action.created_at, TIMESTAMP);
      assert.match(action.updated_at, TIMESTAMP);
      // Stored and returned as JSON Schema, never shorthand.
      assert.deepEqual(action.schema.actor.metadata.properties.role, { type: 'string' });
    });
  });

  describe('events', () => {
    let org;

    before(async () => {
      org = await workos.organizations.createOrganization({ name: unique('Events') });
    });

    test('createEvent with the seed payload (version 2, team + resource, userAgent)', async () => {
      const result = await workos.auditLogs.createEvent(org.id, seedEventV2());
      assert.equal(result, undefined);
    });

    test('createEvent is answered 200 as WorkOS\'s spec says, with the event id', async () => {
      await wired.auditLogs.createEvent(org.id, seedEventV2());
      const ex = lastExchange();
      assert.equal(ex.url.pathname, '/audit_logs/events');
      assert.equal(ex.status, 200);
    });

    test('createEvent v2 with metadata that matches the shorthand schemas', async () => {
      const event = seedEventV2();
      event.actor.metadata = { role: 'admin' };
      event.targets[1].metadata = { size: 42 };
      event.metadata = { environment: 'staging', dry_run: false };
      await workos.auditLogs.createEvent(org.id, event);
    });

    test('createEvent v1 (version omitted) with only a team target', async () => {
      await workos.auditLogs.createEvent(org.id, eventV1());
    });

    test('v1 event with undeclared target type resource throws BadRequestException', async () => {
      const event = eventV1();
      event.targets.push({ type: 'resource', id: 'resource_01GBTAX2J37BAMB2D8GYDR2CC6' });
      await expectSdkError(workos.auditLogs.createEvent(org.id, event), BadRequestException, 400, (err) => {
        assert.equal(err.code, 'invalid_audit_log_event');
        assert.ok(Array.isArray(err.errors) && err.errors.length > 0, 'errors lists the failures');
        const text = `${err.message} ${JSON.stringify(err.errors)}`;
        assert.match(text, /resource/);
        assert.match(text, /\/targets\/1/);
      });
    });

    test('v2 event whose actor metadata breaks the schema lists the instancePath', async () => {
      const event = seedEventV2();
      event.actor.metadata = { role: 123 };
      await expectSdkError(workos.auditLogs.createEvent(org.id, event), BadRequestException, 400, (err) => {
        assert.equal(err.code, 'invalid_audit_log_event');
        assert.ok(
          err.errors.some((e) => e.instancePath === '/actor/metadata/role'),
          `errors: ${JSON.stringify(err.errors)}`,
        );
      });
    });

    test('event with a nonexistent version (99) throws BadRequestException', async () => {
      const event = seedEventV2();
      event.version = 99;
      await expectSdkError(workos.auditLogs.createEvent(org.id, event), BadRequestException, 400, (err) => {
        assert.equal(err.code, 'invalid_audit_log_event');
        assert.match(`${err.message} ${JSON.stringify(err.errors)}`, /version/i);
      });
    });

    test('event with an unconfigured action throws BadRequestException', async () => {
      const event = eventV1();
      event.action = `unknown.${RUN}`;
      await expectSdkError(workos.auditLogs.createEvent(org.id, event), BadRequestException, 400, (err) => {
        assert.equal(err.code, 'invalid_audit_log_event');
      });
    });

    test('event metadata over the limits (51 keys) throws BadRequestException', async () => {
      const event = eventV1();
      event.metadata = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v']));
      await expectSdkError(workos.auditLogs.createEvent(org.id, event), BadRequestException, 400);
    });

    test('event for an unknown organization throws NotFoundException', async () => {
      await expectSdkError(
        workos.auditLogs.createEvent(MISSING_ORG_ID, seedEventV2()),
        NotFoundException,
        404,
        (err) => assert.match(err.message, new RegExp(MISSING_ORG_ID)),
      );
    });

    test('event without an action throws UnprocessableEntityException (422)', async () => {
      const { action, ...event } = eventV1();
      await expectSdkError(workos.auditLogs.createEvent(org.id, event), UnprocessableEntityException, 422, (err) => {
        // Node rewrites the message into the list of errors[].code values.
        assert.match(err.message, /required/);
      });
    });

    test('event without an actor throws UnprocessableEntityException (422)', async () => {
      const { actor, ...event } = eventV1();
      await expectSdkError(workos.auditLogs.createEvent(org.id, event), UnprocessableEntityException, 422);
    });

    test('deleteOrganization of an organization with events deletes them (as WorkOS)', async () => {
      const doomed = await workos.organizations.createOrganization({ name: unique('Doomed') });
      await workos.auditLogs.createEvent(doomed.id, seedEventV2());
      await workos.auditLogs.createEvent(doomed.id, seedEventV2());
      const result = await wired.organizations.deleteOrganization(doomed.id);
      assert.equal(result, undefined);
      assert.equal(lastExchange().status, 200);
      await expectSdkError(workos.organizations.getOrganization(doomed.id), NotFoundException, 404);
      await expectSdkError(workos.auditLogs.createEvent(doomed.id, seedEventV2()), NotFoundException, 404);
    });
  });

  describe('idempotency', () => {
    let org;

    before(async () => {
      org = await workos.organizations.createOrganization({ name: unique('Idem') });
    });

    test('same Idempotency-Key and identical event twice: both succeed', async () => {
      const idempotencyKey = `stele-node-${randomUUID()}`;
      const event = eventV1();
      await workos.auditLogs.createEvent(org.id, event, { idempotencyKey });
      await workos.auditLogs.createEvent(org.id, event, { idempotencyKey });
    });

    test('same Idempotency-Key with a different event: 400 idempotency_key_reused', async () => {
      const idempotencyKey = `stele-node-${randomUUID()}`;
      const event = eventV1();
      await workos.auditLogs.createEvent(org.id, event, { idempotencyKey });
      const different = { ...event, actor: { ...event.actor, id: 'user_someone_else' } };
      let caught;
      await assert.rejects(workos.auditLogs.createEvent(org.id, different, { idempotencyKey }), (err) => {
        caught = err;
        return true;
      });
      // Node maps a 400 to BadRequestException only when the body has both `code` and `errors`;
      // with `code` alone it is a GenericServerException. Both expose `.status` and `.code`.
      assert.ok(
        caught instanceof BadRequestException || caught instanceof GenericServerException,
        `typed SDK exception, got ${caught?.name}: ${caught?.message}`,
      );
      assert.equal(caught.status, 400);
      assert.equal(caught.code, 'idempotency_key_reused');
      assert.notEqual(caught.requestID, '');
    });

    test('different keys with the same event are independent requests', async () => {
      // Two different keys with the same event: neither is a replay nor a conflict.
      const event = eventV1();
      await workos.auditLogs.createEvent(org.id, event, { idempotencyKey: `stele-node-${randomUUID()}` });
      await workos.auditLogs.createEvent(org.id, event, { idempotencyKey: `stele-node-${randomUUID()}` });
    });
  });

  describe('authentication', () => {
    const badClient = new WorkOS('sk_test_not_a_real_key', {
      apiHostname: HOST,
      port: Number(PORT),
      https: false,
    });

    test('a bad API key on GET throws UnauthorizedException', async () => {
      await expectSdkError(badClient.organizations.listOrganizations(), UnauthorizedException, 401);
    });

    test('a bad API key on POST /audit_logs/events throws UnauthorizedException', async () => {
      await expectSdkError(badClient.auditLogs.createEvent(MISSING_ORG_ID, eventV1()), UnauthorizedException, 401);
    });

    test('a bad API key on createSchema throws UnauthorizedException', async () => {
      await expectSdkError(
        badClient.auditLogs.createSchema({ action: `auth.${RUN}`, targets: [{ type: 'team' }] }),
        UnauthorizedException,
        401,
      );
    });
  });

  describe('exports (createExport / getExport, CSV download)', () => {
    const BASE = Date.parse('2024-03-01T10:00:00.000Z');
    const HOUR = 3_600_000;
    const rangeStart = new Date(BASE);
    const rangeEnd = new Date(BASE + 4 * HOUR); // inclusive: e5 occurs exactly here
    const UPDATE = `document.updated.${RUN}`;
    const DELETE = `document.deleted.${RUN}`;
    const LOGIN = `user.signed_in.${RUN}`;
    const alice = { id: 'user_alice', type: 'user', name: 'Alice Liddell', metadata: { role: 'admin' } };
    const bob = { id: 'user_bob', type: 'user', name: 'Bob' };
    const carol = { id: 'user_carol', type: 'user', name: 'Carol "CJ" Jones, Jr.' };
    const apiKeyActor = { id: 'key_ci', type: 'api_key' };
    const team = { id: 'team_red', type: 'team', name: 'Red team' };
    const at = (ms) => new Date(ms);
    const plan = [
      // one second before rangeStart: never exported
      ['early', { action: LOGIN, occurredAt: at(BASE - 1000), actor: alice, targets: [team], context: { location: '10.0.0.1' } }],
      ['e1', {
        action: UPDATE, occurredAt: at(BASE), actor: alice,
        targets: [{ id: 'doc_1', type: 'document', name: 'Plan, v2', metadata: { pages: 12 } }, team],
        context: { location: '10.0.0.1', userAgent: 'Firefox/120.0' }, metadata: { field: 'title' },
      }],
      ['e2', { action: DELETE, occurredAt: at(BASE + HOUR), actor: bob, targets: [{ id: 'doc_2', type: 'document' }], context: { location: '10.0.0.2' } }],
      ['e3', { action: LOGIN, occurredAt: at(BASE + 2 * HOUR), actor: alice, targets: [team], context: { location: '10.0.0.1', userAgent: 'Firefox/120.0' } }],
      ['e4', {
        action: UPDATE, occurredAt: at(BASE + 3 * HOUR), actor: carol,
        targets: [{ id: 'doc_3', type: 'document', name: 'Line 1\nLine 2' }],
        context: { location: '2001:db8::1', userAgent: 'curl/8.5.0' }, metadata: { field: 'body' },
      }],
      ['e5', { action: DELETE, occurredAt: at(BASE + 4 * HOUR), actor: apiKeyActor, targets: [{ id: 'doc_4', type: 'document' }], context: { location: '10.0.0.9' } }],
      // one second after rangeEnd: never exported
      ['late', { action: UPDATE, occurredAt: at(BASE + 4 * HOUR + 1000), actor: alice, targets: [{ id: 'doc_1', type: 'document' }], context: { location: '10.0.0.1' } }],
    ];
    const sent = Object.fromEntries(plan);
    let org;
    const stored = {}; // name -> stored event (from search)

    function expectedRow(name) {
      const e = sent[name];
      const s = stored[name];
      assert.match(s.received_at, TIMESTAMP);
      return {
        id: s.id,
        organization_id: org.id,
        sequence: String(plan.findIndex(([n]) => n === name) + 1),
        version: '1',
        action: e.action,
        occurred_at: e.occurredAt.toISOString(),
        received_at: s.received_at,
        actor_id: e.actor.id,
        actor_type: e.actor.type,
        actor_name: e.actor.name ?? '',
        actor_metadata: e.actor.metadata ?? null,
        targets: e.targets,
        context_location: e.context.location,
        context_user_agent: e.context.userAgent ?? '',
        metadata: e.metadata ?? null,
        ...targetColumns(e.targets),
      };
    }

    function assertRows(rows, names) {
      const nameOf = Object.fromEntries(Object.entries(stored).map(([n, s]) => [s.id, n]));
      assert.deepEqual(rows.map((r) => nameOf[r.id] ?? r.id), names);
      assert.deepEqual(rows, names.map(expectedRow));
    }

    before(async () => {
      org = await workos.organizations.createOrganization({ name: unique('Export') });
      const actor = { metadata: { role: 'string' } };
      await workos.auditLogs.createSchema({
        action: UPDATE, actor, metadata: { field: 'string' },
        targets: [{ type: 'document', metadata: { pages: 'number' } }, { type: 'team' }],
      });
      await workos.auditLogs.createSchema({ action: DELETE, actor, targets: [{ type: 'document' }] });
      await workos.auditLogs.createSchema({ action: LOGIN, actor, targets: [{ type: 'team' }] });
      for (const [, event] of plan) await workos.auditLogs.createEvent(org.id, event);
      // createEvent returns nothing: read ids, sequences and received_at back from the search.
      const found = await searchEvents({ organization_id: org.id });
      assert.deepEqual(found.map((e) => e.sequence), plan.map((_, i) => i + 1));
      assert.deepEqual(found.map((e) => e.action), plan.map(([, e]) => e.action));
      plan.forEach(([name], i) => {
        assert.match(found[i].id, EVENT_ID);
        stored[name] = found[i];
      });
    });

    test('createExport sends POST /audit_logs/exports and returns an audit_log_export', async () => {
      const exp = await wired.auditLogs.createExport({ organizationId: org.id, rangeStart, rangeEnd });
      const ex = lastExchange();
      assert.equal(ex.method, 'POST');
      assert.equal(ex.url.pathname, '/audit_logs/exports');
      assert.deepEqual(ex.body, {
        organization_id: org.id,
        range_start: '2024-03-01T10:00:00.000Z',
        range_end: '2024-03-01T14:00:00.000Z',
      });
      assert.ok(ex.headers['idempotency-key'], 'the HTTP client adds an Idempotency-Key to POSTs');
      assert.equal(ex.status, 201);
      assert.equal(exp.object, 'audit_log_export');
      assert.match(exp.id, EXPORT_ID);
      assert.ok(['pending', 'ready'].includes(exp.state), exp.state);
      assert.match(exp.createdAt, TIMESTAMP);
      assert.match(exp.updatedAt, TIMESTAMP);

      const got = await wired.auditLogs.getExport(exp.id);
      assert.equal(lastExchange().method, 'GET');
      assert.equal(lastExchange().url.pathname, `/audit_logs/exports/${exp.id}`);
      assert.equal(got.id, exp.id);
      assert.equal(got.createdAt, exp.createdAt);
    });

    test('export of the whole range: exact CSV header, rows and cells (bounds inclusive)', async () => {
      const exp = await workos.auditLogs.createExport({ organizationId: org.id, rangeStart, rangeEnd });
      assertRows(await exportRows(exp.id), ['e1', 'e2', 'e3', 'e4', 'e5']);
    });

    test('createExport filters: actions and actorNames (AND across fields, OR within)', async () => {
      const exp = await wired.auditLogs.createExport({
        organizationId: org.id, rangeStart, rangeEnd,
        actions: [UPDATE, DELETE], actorNames: ['Alice Liddell', 'Bob'],
      });
      assert.deepEqual(lastExchange().body.actions, [UPDATE, DELETE]);
      assert.deepEqual(lastExchange().body.actor_names, ['Alice Liddell', 'Bob']);
      assertRows(await exportRows(exp.id), ['e1', 'e2']);
    });

    test('createExport filters: actorIds and targets (target types)', async () => {
      const exp = await wired.auditLogs.createExport({
        organizationId: org.id, rangeStart, rangeEnd, actorIds: [alice.id, apiKeyActor.id], targets: ['document'],
      });
      assert.deepEqual(lastExchange().body.actor_ids, [alice.id, apiKeyActor.id]);
      assert.deepEqual(lastExchange().body.targets, ['document']);
      assertRows(await exportRows(exp.id), ['e1', 'e5']);
      const teams = await workos.auditLogs.createExport({ organizationId: org.id, rangeStart, rangeEnd, targets: ['team'] });
      assertRows(await exportRows(teams.id), ['e1', 'e3']);
    });

    test('actors alias: createExport (11.x) cannot send it, so raw workos.post through the SDK client', async () => {
      // The 11.x serializer only emits actor_names; older SDKs sent `actors`, which Stele aliases.
      const { data } = await workos.post('/audit_logs/exports', {
        organization_id: org.id,
        range_start: rangeStart.toISOString(),
        range_end: rangeEnd.toISOString(),
        actors: [carol.name],
      });
      assert.equal(data.object, 'audit_log_export');
      assertRows(await exportRows(data.id), ['e4']);
    });

    test('an export with no matching event holds only the header', async () => {
      const exp = await workos.auditLogs.createExport({
        organizationId: org.id, rangeStart, rangeEnd, actions: [LOGIN], actorNames: ['Bob'],
      });
      assert.deepEqual(await exportRows(exp.id), []);
    });

    test('an export is a snapshot: events stored after it was created are absent', async () => {
      const snapOrg = await workos.organizations.createOrganization({ name: unique('Snapshot') });
      const ev = (minutes, id) => ({
        action: LOGIN, occurredAt: at(BASE + minutes * 60_000), actor: bob,
        targets: [{ id, type: 'team' }], context: { location: '10.1.1.1' },
      });
      await workos.auditLogs.createEvent(snapOrg.id, ev(0, 'team_0'));
      await workos.auditLogs.createEvent(snapOrg.id, ev(60, 'team_1'));
      const exp = await workos.auditLogs.createExport({ organizationId: snapOrg.id, rangeStart, rangeEnd });
      const first = await waitUntilReady(workos, exp.id);
      await workos.auditLogs.createEvent(snapOrg.id, ev(30, 'team_late')); // in range, stored afterwards

      const targetIds = (rows) => rows.map((r) => r.targets[0].id);
      const one = await download(first.url);
      assert.equal(one.status, 200);
      assert.deepEqual(targetIds(parseExportCsv(one.text)), ['team_0', 'team_1']);
      assert.deepEqual(targetIds(await exportRows(exp.id)), ['team_0', 'team_1'], 'a later download too');

      const fresh = await workos.auditLogs.createExport({ organizationId: snapOrg.id, rangeStart, rangeEnd });
      const rows = await exportRows(fresh.id);
      assert.deepEqual(targetIds(rows), ['team_0', 'team_1', 'team_late']);
      assert.deepEqual(rows.map((r) => r.sequence), ['1', '2', '3']);
    });

    test('getExport issues a fresh signed url each time; both download the same file', async () => {
      const exp = await workos.auditLogs.createExport({ organizationId: org.id, rangeStart, rangeEnd, actions: [LOGIN] });
      const a = await waitUntilReady(workos, exp.id);
      await new Promise((r) => setTimeout(r, 50));
      const b = await waitUntilReady(workos, exp.id);
      assert.notEqual(a.url, b.url);
      const [da, db] = [await download(a.url), await download(b.url)];
      assert.equal(da.status, 200);
      assert.equal(da.text, db.text);
      assertRows(parseExportCsv(da.text), ['e3']);

      const forged = new URL(b.url);
      const sig = forged.searchParams.get('signature');
      assert.ok(sig, `signed url: ${b.url}`);
      forged.searchParams.set('signature', (sig[0] === '0' ? '1' : '0') + sig.slice(1));
      const refused = await download(forged.toString());
      assert.ok([401, 403, 404].includes(refused.status), `forged link got ${refused.status}`);
      assert.doesNotMatch(refused.text, /audit_log_event_/);
    });

    test('rangeStart after rangeEnd: 400 invalid_audit_log_export_range_date', async () => {
      let caught;
      await assert.rejects(
        workos.auditLogs.createExport({ organizationId: org.id, rangeStart: rangeEnd, rangeEnd: rangeStart }),
        (err) => {
          caught = err;
          return true;
        },
      );
      // Node maps a 400 to BadRequestException when the body has `code` and `errors`,
      // otherwise to GenericServerException; both expose status and code.
      assert.ok(
        caught instanceof BadRequestException || caught instanceof GenericServerException,
        `typed SDK exception, got ${caught?.name}: ${caught?.message}`,
      );
      assert.equal(caught.status, 400);
      assert.equal(caught.code, 'invalid_audit_log_export_range_date');
      assert.notEqual(caught.requestID, '');
    });

    test('getExport of an unknown id throws NotFoundException', async () => {
      await expectSdkError(
        workos.auditLogs.getExport('audit_log_export_01H0000000000000000000000Z'),
        NotFoundException,
        404,
      );
    });

    test('createExport for an unknown organization throws NotFoundException', async () => {
      await expectSdkError(
        workos.auditLogs.createExport({ organizationId: MISSING_ORG_ID, rangeStart, rangeEnd }),
        NotFoundException,
        404,
      );
    });
  });

  describe('retention and audit log configuration', () => {
    let org;

    before(async () => {
      org = await workos.organizations.createOrganization({ name: unique('Retention') });
    });

    const getDays = async () =>
      (await workos.auditLogs.getOrganizationAuditLogsRetention({ id: org.id })).retentionPeriodInDays;

    test('getOrganizationAuditLogsRetention of a new organization is null', async () => {
      const got = await wired.auditLogs.getOrganizationAuditLogsRetention({ id: org.id });
      const ex = lastExchange();
      assert.equal(ex.method, 'GET');
      assert.equal(ex.url.pathname, `/organizations/${org.id}/audit_logs_retention`);
      assert.equal(ex.status, 200);
      assert.deepEqual(got, { retentionPeriodInDays: null });
    });

    for (const [period, days] of [
      ['1_MONTH', 30],
      ['6_MONTHS', 180],
      ['1_YEAR', 365],
      ['10_YEARS', 3650],
    ]) {
      test(`updateOrganizationAuditLogsRetention with retentionPeriod ${period} gives ${days} days`, async () => {
        const got = await wired.auditLogs.updateOrganizationAuditLogsRetention({ id: org.id, retentionPeriod: period });
        const ex = lastExchange();
        assert.equal(ex.method, 'PUT');
        assert.equal(ex.url.pathname, `/organizations/${org.id}/audit_logs_retention`);
        assert.deepEqual(ex.body, { retention_period: period });
        assert.equal(ex.status, 200);
        assert.deepEqual(got, { retentionPeriodInDays: days });
        assert.equal(await getDays(), days);
      });
    }

    test('retention_period_in_days form (no SDK method in 11.x: raw workos.put), then null clears it', async () => {
      // updateOrganizationAuditLogsRetention only serializes retentionPeriod.
      const path = `/organizations/${org.id}/audit_logs_retention`;
      const { data } = await workos.put(path, { retention_period_in_days: 90 });
      assert.deepEqual(data, { retention_period_in_days: 90 });
      assert.equal(await getDays(), 90);
      const cleared = await workos.put(path, { retention_period_in_days: null });
      assert.deepEqual(cleared.data, { retention_period_in_days: null });
      assert.equal(await getDays(), null);
    });

    for (const period of ['12_MONTHS', '11_YEARS', '0_MONTHS', 'forever']) {
      test(`an invalid retentionPeriod (${period}) throws UnprocessableEntityException and changes nothing`, async () => {
        await workos.auditLogs.updateOrganizationAuditLogsRetention({ id: org.id, retentionPeriod: '2_YEARS' });
        await expectSdkError(
          workos.auditLogs.updateOrganizationAuditLogsRetention({ id: org.id, retentionPeriod: period }),
          UnprocessableEntityException,
          422,
          (err) => assert.equal(err.code, 'validation_failed'),
        );
        assert.equal(await getDays(), 730);
      });
    }

    test('an invalid retention_period_in_days (raw workos.put) is 422', async () => {
      const path = `/organizations/${org.id}/audit_logs_retention`;
      for (const days of [0, 3651, -30]) {
        await expectSdkError(workos.put(path, { retention_period_in_days: days }), UnprocessableEntityException, 422);
      }
      assert.equal(await getDays(), 730);
    });

    test('retention of an unknown organization throws NotFoundException', async () => {
      await expectSdkError(
        workos.auditLogs.getOrganizationAuditLogsRetention({ id: MISSING_ORG_ID }),
        NotFoundException,
        404,
      );
      await expectSdkError(
        workos.auditLogs.updateOrganizationAuditLogsRetention({ id: MISSING_ORG_ID, retentionPeriod: '1_YEAR' }),
        NotFoundException,
        404,
      );
    });

    test('audit_log_configuration (no SDK method in 11.x: raw workos.get) has the WorkOS shape', async () => {
      const fresh = await workos.organizations.createOrganization({ name: unique('Config') });
      const path = (id) => `/organizations/${id}/audit_log_configuration`;
      const { data } = await workos.get(path(fresh.id));
      assert.deepEqual(data, {
        organization_id: fresh.id,
        // 0: no retention set, events kept forever; WorkOS types the field as an integer.
        retention_period_in_days: 0,
        state: 'active',
      });
      await workos.auditLogs.updateOrganizationAuditLogsRetention({ id: fresh.id, retentionPeriod: '3_MONTHS' });
      const after = (await workos.get(path(fresh.id))).data;
      assert.equal(after.retention_period_in_days, 90);
      assert.equal(after.state, 'active');
      await expectSdkError(workos.get(path(MISSING_ORG_ID)), NotFoundException, 404);
    });
  });
});
