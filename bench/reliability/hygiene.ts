import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { POSTGRES_URL, REDIS_URL } from '../../test/support/database';
import { startTestHost } from '../../test/support/host';
import { TestOAuthServer } from '../../test/support/oauth-server';
import { apiClient, marker, QUIET_HOST_ENV, tenantKey, type ApiResponse } from './http';
import { registerOAuthProvider } from './oauth';
import type { Profile } from './profile';
import { bounded, Examples, info, type PartResult } from './report';
import { MarkerScan } from './scan';

/** Routes whose answer is a value by design (the only places a value may come back; token-rejected answers the refreshed token). */
const VALUE_ROUTE = /\/value(\?|$)|\/access-token(\?|$)|\/token-rejected$|\/webhooks\/[^/]+\/[^/]+\/secret(\/stage)?$/;

/**
 * Secret hygiene: every value stored during the run is a unique marker; the host is driven through every
 * value-carrying path (vault and envelope stores, rotate, rollback, reads that fill the Redis cache, OAuth
 * tokens, webhook secrets generated, staged and activated), then the logs (debug level), the database
 * (SQLite file, WAL and shared memory; or every PostgreSQL table: metadata, audit, outbox), `/metrics`,
 * every answer of a non-value route and every Redis key of the host are searched for every marker,
 * plain and base64.
 */
export async function hygiene(p: Profile): Promise<PartResult> {
  const started = performance.now();
  const examples = new Examples(20);
  let markersTotal = 0;
  let hitsTotal = 0;
  const places: string[] = [];
  for (const kind of p.hygiene.databases) {
    const key = tenantKey('hygiene', 'acme');
    const prefix = `cvrel:${randomBytes(4).toString('hex')}:`;
    const host = await startTestHost(kind, {
      AUTH_API_KEYS: JSON.stringify([key.entry]),
      ...QUIET_HOST_ENV,
      LOG_LEVEL: 'debug',
      REDIS_URL,
      REDIS_KEY_PREFIX: prefix,
    });
    const idp = await TestOAuthServer.start();
    await registerOAuthProvider(host.app, 'idp', idp);
    // The OAuth client secret is a stored value too.
    const markers = new Set<string>([idp.clientSecret]);
    const answers: string[] = [];
    const raw = apiClient(host.baseUrl, key.key);
    const call = async (method: string, path: string, body?: unknown, expected = 300): Promise<ApiResponse> => {
      const res = await raw(method, path, body);
      if (res.status >= expected) throw new Error(`${method} ${path}: ${res.status} ${res.text.slice(0, 200)}`);
      if (!VALUE_ROUTE.test(path)) answers.push(`${method} ${path} ${res.status} ${res.text}`);
      else if (res.status === 200) {
        // A value the host generated (webhook secrets, OAuth tokens) is a marker too.
        for (const v of [res.body?.value, res.body?.secret, res.body?.accessToken]) if (typeof v === 'string') markers.add(v);
      }
      return res;
    };
    const value = (tag: string) => {
      const v = marker(tag);
      markers.add(v);
      return v;
    };
    try {
      for (let i = 0; i < p.hygiene.credentials; i++) {
        const store = i % 2 === 0 ? 'vault' : 'envelope';
        const created = await call('POST', '/v1/credentials', { integrationId: 'hyg', connectionId: `c${i}`, type: 'api_key', value: value('st'), valueStore: store, tags: { n: String(i) } });
        const id = created.body.id as string;
        await call('GET', `/v1/credentials/${id}/value`);
        await call('POST', `/v1/credentials/${id}/rotate`, { value: value('ro') });
        await call('GET', `/v1/credentials/${id}/value`);
        await call('GET', `/v1/credentials/${id}/versions/1/value`);
        if (i % 3 === 0) await call('POST', `/v1/credentials/${id}/rollback`, { version: 1 });
        await call('GET', `/v1/credentials/${id}`);
        await call('GET', `/v1/credentials/${id}/versions`);
        // A refused write with a value in it: the value must not reach the error or the log either.
        await call('POST', `/v1/credentials/${id}/rotate`, { value: value('cf'), expectedVersion: 1 }, 500);
        if (i % 4 === 0) {
          const conn = `oauth${i}`;
          // Tokens from a real authorization server, then a refresh there (the 401 report).
          const tokens = await idp.authorize('openid');
          markers.add(tokens.access_token);
          if (tokens.refresh_token) markers.add(tokens.refresh_token);
          await call('POST', `/v1/oauth/connections/idp/${conn}/tokens`, tokens);
          await call('GET', `/v1/oauth/connections/idp/${conn}/access-token`);
          await call('POST', `/v1/oauth/connections/idp/${conn}/token-rejected`, { accessToken: tokens.access_token });
          await call('GET', `/v1/oauth/connections/idp/${conn}/access-token`);
          const wh = `wh${i}`;
          await call('POST', `/v1/rotation/webhooks/hyg/${wh}/secret`, {});
          await call('POST', `/v1/rotation/webhooks/hyg/${wh}/secret/stage`, {});
          await call('POST', `/v1/rotation/webhooks/hyg/${wh}/secret/activate`, {});
          await call('GET', `/v1/rotation/webhooks/hyg/${wh}/versions`);
        }
      }
      for (const path of ['/v1/credentials?limit=500', '/v1/credentials/statistics', '/v1/credentials/expiring', '/v1/connections', '/v1/audit?limit=500', '/v1/rotation/policies', '/v1/rotation/due', '/v1/rotation/expiries', '/health/ready']) await call('GET', path);
      await call('POST', '/v1/audit/verify', {});
      const metrics = await (await fetch(`${host.baseUrl}/metrics`)).text();
      // Let the outbox dispatcher and the cache's write-behind settle: what they write is scanned too.
      await new Promise((r) => setTimeout(r, 1500));

      const scan = new MarkerScan(markers);
      markersTotal += scan.markers;
      scan.scan('/metrics', metrics);
      answers.forEach((a, i) => scan.scan(`answer ${i} (${a.slice(0, 60)})`, a));
      scan.scan('logs', host.logs.join('\n'));
      const redisKeys = await scan.scanRedis(REDIS_URL, prefix);
      let dbPlaces: string;
      if (kind === 'sqlite') {
        const files = scan.scanFiles(host.dataDir, /\.sqlite(-wal|-shm|-journal)?$/);
        dbPlaces = `${files} SQLite files (database, WAL, shared memory)`;
      } else {
        const tables = await scan.scanPostgresSchema(POSTGRES_URL, (host.db.options as { schema: string }).schema);
        dbPlaces = `${tables} PostgreSQL tables`;
      }
      places.push(`${kind}: ${scan.markers} markers; ${host.logs.length} log lines; ${dbPlaces}; ${redisKeys} Redis keys; ${answers.length} non-value answers; /metrics`);
      hitsTotal += scan.hits.length;
      scan.hits.forEach((h) => examples.add(`${kind}: ${h}`));
      if (redisKeys === 0) examples.add(`${kind}: no Redis key was written — the scan proves nothing there`);
    } finally {
      await host.close();
      await idp.close();
    }
  }
  return {
    part: 'Secret hygiene',
    profile: p.name,
    method:
      'Every value stored is a unique marker (`<tag>M` + 24 hex). Per database the host runs with Redis (cache L2 and shared state) and debug logging; each credential is stored (vault and envelope alternately), read, rotated, read again, its first version read, some rolled back, metadata and versions listed, and a stale-version rotate with a fresh value refused; every fourth connection also stores the tokens of a real authorization (oidc-provider), reads the access token, reports it rejected (a refresh at the provider) and reads the new one, and generates, stages and activates a webhook secret (values the host or the provider generated, and the OAuth client secret, become markers too). Then lists, statistics, connections, audit, policies, health and `/metrics` are fetched, and every marker is searched for (plain and base64/base64url at each byte alignment) in the captured log lines, the SQLite database file with its WAL and shared memory (or every row of every PostgreSQL table of the schema: metadata, versions, envelope rows, audit, outbox), every Redis key under the host\'s prefix (strings, hashes, lists, sets, sorted sets), `/metrics`, and every answer of a route that does not return a value by design.',
    ran: places.join(' · '),
    figures: [info('markers stored', markersTotal), bounded('markers found outside the vault and value answers', hitsTotal, '=', 0)],
    examples: examples.list,
    durationS: Math.round((performance.now() - started) / 1000),
  };
}
