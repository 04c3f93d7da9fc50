// docs/sdks.md: the Node program shown there, extracted from the page as it is, runs
// against this server on each SDK version the page tells people to install, and prints
// what the page says it prints; the install commands name exactly those versions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const HOST = process.env.STELE_HOST;
const PORT = process.env.STELE_PORT;
const API_KEY = process.env.STELE_API_KEY;
if (!HOST || !PORT || !API_KEY) {
  throw new Error('STELE_HOST, STELE_PORT and STELE_API_KEY must be set (use ./run.sh)');
}

const page = readFileSync(path.join(import.meta.dirname, '..', '..', 'docs', 'sdks.md'), 'utf8');
const blocks = (language) =>
  [...page.matchAll(new RegExp('^```' + language + '\\n([\\s\\S]*?)^```$', 'gm'))].map((m) => m[1]);
const installed = (name) =>
  JSON.parse(readFileSync(path.join(import.meta.dirname, 'node_modules', name, 'package.json'), 'utf8'));

// The versions the page's install commands name, and the package each is installed as here.
const VERSIONS = [
  { version: '11.0.0', module: '@workos-inc/node' },
  { version: '8.13.0', module: 'workos-node-8' },
];

test('docs/sdks.md names exactly the Node SDK versions this suite runs', () => {
  const commands = [...page.matchAll(/npm install @workos-inc\/node@([0-9.]+)/g)].map((m) => m[1]);
  assert.deepEqual([...new Set(commands)].sort(), VERSIONS.map((v) => v.version).sort());
  for (const { version, module } of VERSIONS) {
    assert.equal(installed(module).version, version, `${module} is ${version}`);
  }
  // The Node.js each version needs, as its package declares it, is what the page says.
  assert.equal(installed('@workos-inc/node').engines.node, '>=22.11.0');
  assert.match(page, /`npm install @workos-inc\/node@11\.0\.0` \| Node\.js 22\.11 or newer/);
  assert.equal(installed('workos-node-8').engines.node, '>=20.15.0');
  assert.match(page, /`npm install @workos-inc\/node@8\.13\.0` \| Node\.js 20\.15 or newer/);
});

for (const { version, module } of VERSIONS) {
  test(`the Node program in docs/sdks.md runs on @workos-inc/node ${version}`, async () => {
    const programs = blocks('js');
    assert.equal(programs.length, 1, 'one Node program on the page');
    const program = programs[0].replaceAll("from '@workos-inc/node'", `from '${module}'`);
    // Written beside this suite so the import resolves to the installed SDK.
    const file = path.join(import.meta.dirname, `.docs-sdks-${randomUUID()}.mjs`);
    writeFileSync(file, program);
    try {
      const { stdout } = await promisify(execFile)(process.execPath, [file], {
        env: { ...process.env, STELE_URL: `http://${HOST}:${PORT}`, STELE_API_KEY: API_KEY },
      });
      assert.match(stdout, /^Connected to Stele: \d+ organizations on the first page\n$/);
    } catch (error) {
      if (error.stderr === undefined) throw error;
      assert.fail(`${program}\n--- stderr ---\n${error.stderr}`);
    } finally {
      rmSync(file, { force: true });
    }
  });
}
