import { randomBytes } from 'node:crypto';
import { CredentialsService, CredentialType, ValueStoreKind } from '@app/credentials';
import { DATABASE_KINDS } from '@app/testing';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { callHost, startTestHost, TestHost, ROTATION_JOBS_OFF } from './support/host';

const DAY = 86_400_000;

/**
 * The "attention" lists are not paged: GET /v1/credentials/expiring answers the first 500, GET /v1/rotation/expiries and
 * GET /v1/rotation/due the first 1,000, soonest first — and each says `truncated: true` when more matched, `false` at
 * exactly its limit. Through real HTTP, a real database and the local vault; the credentials are stored through the lib
 * (storeMany, envelope values) to reach the limits quickly.
 */
describe.each(DATABASE_KINDS)('the attention lists say when they are cut, on %s', (kind) => {
  let host: TestHost;
  const reader = generateApiKey('acme-lists', 'acme', ['credentials:read', 'rotation:read']);
  const ctx = { tenantId: 'acme', actor: { id: 'user:seeder' } };
  let stored = 0;

  /** `n` api_keys (due for rotation 90 days after now) expiring `inDays` from now. */
  const store = async (n: number, inDays: number): Promise<string[]> => {
    const ids: string[] = [];
    const expiresAt = new Date(Date.now() + inDays * DAY);
    for (let from = 0; from < n; from += 100) {
      const items = Array.from({ length: Math.min(100, n - from) }, () => ({
        ctx,
        input: { integrationId: 'github', connectionId: `c${++stored}`, type: CredentialType.API_KEY, value: `k_${randomBytes(12).toString('hex')}`, valueStore: ValueStoreKind.ENVELOPE, expiresAt },
      }));
      for (const r of await host.app.get(CredentialsService).storeMany(items)) {
        if (r.credential === undefined) throw r.error;
        ids.push(r.credential.id);
      }
    }
    return ids;
  };
  const list = async (path: string) => {
    const r = await callHost(host, reader.key, 'GET', path);
    expect(r.status).toBe(200);
    return r.body as { items: Array<{ id?: string; credential?: { id: string }; dueAt?: string }>; truncated: boolean };
  };
  const shape = (body: { items: unknown[]; truncated: boolean }) => ({ items: body.items.length, truncated: body.truncated });

  beforeAll(async () => {
    host = await startTestHost(kind, { AUTH_API_KEYS: JSON.stringify([reader.entry]), ...ROTATION_JOBS_OFF });
  });

  afterAll(async () => {
    await host?.close();
  });

  it('GET /v1/credentials/expiring: 500 at most, truncated once a 501st expires within the window', async () => {
    expect(await list('/v1/credentials/expiring')).toEqual({ items: [], truncated: false });
    await store(500, 10);
    expect(shape(await list('/v1/credentials/expiring'))).toEqual({ items: 500, truncated: false });
    const [soonest] = await store(1, 5);
    const cut = await list('/v1/credentials/expiring');
    expect(shape(cut)).toEqual({ items: 500, truncated: true });
    expect(cut.items[0].id).toBe(soonest);
    // Outside the window: not more.
    expect(shape(await list('/v1/credentials/expiring?days=7'))).toEqual({ items: 1, truncated: false });
  });

  it('GET /v1/rotation/expiries and /v1/rotation/due: 1,000 at most, truncated once a 1,001st matches', async () => {
    await store(1000 - stored, 10);
    expect(shape(await list('/v1/rotation/expiries'))).toEqual({ items: 1000, truncated: false });
    expect(shape(await list('/v1/rotation/due?days=400'))).toEqual({ items: 1000, truncated: false });
    expect(await list('/v1/rotation/due')).toEqual({ items: [], truncated: false });

    const [last] = await store(1, 1);
    const expiries = await list('/v1/rotation/expiries');
    expect(shape(expiries)).toEqual({ items: 1000, truncated: true });
    expect(expiries.items[0].credential?.id).toBe(last);
    const due = await list('/v1/rotation/due?days=400');
    expect(shape(due)).toEqual({ items: 1000, truncated: true });
    // Soonest due first: the one stored last is due last, so it is the one left out.
    const dueAt = due.items.map((d) => Date.parse(d.dueAt!));
    expect(dueAt).toEqual([...dueAt].sort((a, b) => a - b));
    expect(due.items.map((d) => d.credential?.id)).not.toContain(last);
  });
});
