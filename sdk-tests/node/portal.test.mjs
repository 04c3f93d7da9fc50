// Admin Portal through the official WorkOS Node SDK (@workos-inc/node 11):
// adminPortal.generateLink against Stele, with the link followed like a browser would.
// (Node v11 has no revokeLink; the Python suite covers revocation.)
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { WorkOS, NotFoundException, UnprocessableEntityException } from '@workos-inc/node';

const HOST = process.env.STELE_HOST;
const PORT = process.env.STELE_PORT;
const API_KEY = process.env.STELE_API_KEY;
if (!HOST || !PORT || !API_KEY) {
  throw new Error('STELE_HOST, STELE_PORT and STELE_API_KEY must be set (use ./run.sh)');
}
const BASE_URL = `http://${HOST}:${PORT}`;
const workos = new WorkOS(API_KEY, { apiHostname: HOST, port: Number(PORT), https: false });
const MISSING_ORG_ID = 'org_01H0000000000000000000000Z';

async function organization() {
  return workos.organizations.createOrganization({ name: `Portal Node ${randomUUID().slice(0, 8)}` });
}

/** The first hop of a browser following `link`: status, location and the portal cookie. */
async function open(link) {
  const response = await fetch(link, { redirect: 'manual' });
  const cookie = response.headers.get('set-cookie');
  return {
    status: response.status,
    location: response.headers.get('location'),
    token: cookie ? cookie.split(';')[0].split('=')[1] : null,
  };
}

describe('adminPortal.generateLink', () => {
  test('returns a link of this server that opens the audit log portal once', async () => {
    const org = await organization();
    const { link } = await workos.adminPortal.generateLink({
      organization: org.id,
      intent: 'audit_logs',
      returnUrl: 'https://app.example.com/settings',
      successUrl: 'https://app.example.com/done',
      adminEmails: ['it@example.com'],
    });
    assert.ok(link.startsWith(`${BASE_URL}/portal/launch?secret=`), link);
    const first = await open(link);
    assert.equal(first.status, 303);
    assert.equal(first.location, '/portal/events');
    assert.ok(first.token);
    const page = await fetch(`${BASE_URL}/portal/events`, {
      headers: { cookie: `stele_portal=${first.token}` },
      redirect: 'manual',
    });
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.ok(html.includes(org.name), 'the page names the organization');
    assert.ok(html.includes('Back to app.example.com'));
    assert.equal((await open(link)).status, 403, 'a link works once');
  });

  test('serves log_streams and refuses other intents naming the ones served', async () => {
    const org = await organization();
    const { link } = await workos.adminPortal.generateLink({ organization: org.id, intent: 'log_streams' });
    assert.equal((await open(link)).location, '/portal/log-streams');
    await assert.rejects(
      workos.adminPortal.generateLink({ organization: org.id, intent: 'sso' }),
      (error) => {
        assert.ok(error instanceof UnprocessableEntityException, `${error?.name}: ${error?.message}`);
        assert.equal(error.status, 422);
        assert.equal(error.code, 'portal_intent_not_served');
        assert.match(error.message, /audit_logs, log_streams/);
        return true;
      },
    );
  });

  test('an unknown organization is a NotFoundException', async () => {
    await assert.rejects(
      workos.adminPortal.generateLink({ organization: MISSING_ORG_ID, intent: 'audit_logs' }),
      (error) => error instanceof NotFoundException && error.status === 404,
    );
  });
});
