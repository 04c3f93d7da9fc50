// What every browser test file shares: the server it drives (from the environment that
// run.sh checks), the API called with the suite's key, and a fresh headless Chromium
// profile (Debian's package, driven by playwright-core).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const BASE = process.env.STELE_BASE_URL.replace(/\/$/, '');
export const API_KEY = process.env.STELE_API_KEY;
export const ADMIN_PASSWORD = process.env.STELE_ADMIN_PASSWORD;
export const SCREENSHOTS = path.join(import.meta.dirname, 'screenshots');
const CHROMIUM = process.env.STELE_CHROMIUM || '/usr/bin/chromium';

/** Calls the API with the suite's key; `body` is sent as JSON, the answer parsed. */
export async function api(method, apiPath, body) {
  const response = await fetch(`${BASE}${apiPath}`, {
    method,
    headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/**
 * Starts Chromium on a fresh profile (`options` are playwright-core's, such as
 * `acceptDownloads` or `javaScriptEnabled`); returns its context, its first page (15 s
 * default timeout) and `close()`, which also removes the profile.
 */
export async function openBrowser(profilePrefix, options = {}) {
  const profile = mkdtempSync(path.join(tmpdir(), profilePrefix));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1366, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    ...options,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15_000);
  return {
    context,
    page,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
