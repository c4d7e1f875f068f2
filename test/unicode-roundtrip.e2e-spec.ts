import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { DATABASE_KINDS } from '@app/testing';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { createApp } from '../apps/api/src/bootstrap';
import { loadAppConfig } from '../apps/api/src/config/app.config';
import { startTestHost, TestHost } from './support/host';

/** Values a careless layer would change: every class of tricky Unicode, and binary-looking text. */
const TRICKY: Record<string, string> = {
  astral: 'key-😀-𝔘𝔫𝔦-\u{10FFFD}-\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}',
  combining: 'e\u0301 vs é — Z\u0336\u0317a\u0335l\u0334g\u0337o',
  nfdVsNfc: 'A\u030A-\u00C5-\u212B',
  rtl: 'שלום-مرحبا-\u202Eabc\u202C-\u200F',
  bomAndInvisibles: '\uFEFFstart\u200B\u2060\u00AD-end',
  lineSeparators: 'a\u2028b\u2029c\r\nd\te',
  nonCharacters: 'x\uFFFE\uFFFF\u{10FFFF}\uE000',
  nul: 'before\u0000after\u0000',
  controls: '\u0001\u0007\u001b[31m\u007f\u0085',
  backslashesAndQuotes: `\\u0000 "quoted" 'single' \\\\ \\n {"json": true}`,
  whitespaceKept: '  padded value with spaces  \n',
  percentAndEscapes: '%00%C3%28 \\xC3\\x28 &amp; <script>',
  latin1Bytes: Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('latin1'),
  base64Binary: randomBytes(96).toString('base64'),
  long: '😀é\u0000'.repeat(2000),
};

/**
 * A value is read back exactly as it was acknowledged — after a restart of the host, so from the
 * vault or the database, not from the cache — in both value stores, on both databases.
 */
describe.each(DATABASE_KINDS)('values survive a restart byte for byte on %s', (kind) => {
  let host: TestHost;
  let app: NestFastifyApplication;
  let base: string;
  const key = generateApiKey('acme-app', 'acme', ['credentials:read', 'credentials:read-value', 'credentials:write']);
  const stored: { id: string; name: string; value: string; store: string }[] = [];

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { 'x-api-key': key.key, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  beforeAll(async () => {
    host = await startTestHost(kind, { AUTH_API_KEYS: JSON.stringify([key.entry]), OAUTH_PROACTIVE_ENABLED: 'false' });
    app = host.app;
    base = host.baseUrl;
  });

  afterAll(async () => {
    await app?.close();
    await host?.db.drop();
    if (host) rmSync(host.dataDir, { recursive: true, force: true });
  });

  it('stores every tricky value in the vault and in envelope storage', async () => {
    for (const store of ['vault', 'envelope']) {
      for (const [name, value] of Object.entries(TRICKY)) {
        const r = await call('POST', '/v1/credentials', { integrationId: 'unicode', connectionId: `${store}-${name}`, type: 'custom_secret', value, valueStore: store });
        expect({ name, store, status: r.status, message: r.body.message }).toEqual({ name, store, status: 201, message: undefined });
        stored.push({ id: r.body.id as string, name, value, store });
      }
    }
    // and as a rotation, so a second version goes the same way
    const first = stored[0];
    const rotated = await call('POST', `/v1/credentials/${first.id}/rotate`, { value: TRICKY.nul });
    expect(rotated.status).toBe(200);
    first.value = TRICKY.nul;
  });

  it('reads them back identical after the host restarted', async () => {
    await app.close();
    app = await createApp(loadAppConfig(host.env));
    base = (await app.getUrl()).replace('[::1]', '127.0.0.1');
    for (const { id, name, value, store } of stored) {
      const r = await call('GET', `/v1/credentials/${id}/value`);
      expect({ name, store, status: r.status }).toEqual({ name, store, status: 200 });
      const back = r.body.value as string;
      // Compared as UTF-16 code units and as UTF-8 bytes: no normalisation, no replacement, no trimming.
      expect({ name, store, same: back === value, bytes: Buffer.compare(Buffer.from(back, 'utf8'), Buffer.from(value, 'utf8')) }).toEqual({ name, store, same: true, bytes: 0 });
    }
    const v1 = await call('GET', `/v1/credentials/${stored[0].id}/versions/1/value`);
    expect(v1.body.value).toBe(TRICKY[stored[0].name]);
  });
});
