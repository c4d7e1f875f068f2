import { randomBytes, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import fc from 'fast-check';
import { Webhook } from 'standardwebhooks';
import { startTestHost } from '../../test/support/host';
import { apiClient, marker, QUIET_HOST_ENV, tenantKey, type ApiClient, type ApiResponse } from './http';
import { registerOAuthProvider } from './oauth';
import { fetchOperations, fillPath, type Operation } from './openapi';
import type { Profile } from './profile';
import { bounded, Examples, info, type PartResult } from './report';

/** Ids a request is filled with: the other tenant's, or ones that exist nowhere. */
interface Ids {
  id: string;
  integrationId: string;
  connectionId: string;
  /** Any other path parameter (routes added later). */
  other: string;
  /** A webhook secret of the pair, to sign a verify request that would pass for its owner. */
  webhookSecret?: string;
}

interface Request {
  method: string;
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
}

/** Body (and headers) a route accepts when its ids exist: the request then reaches the lookup, not validation. */
function requestFor(op: Operation, ids: Ids, variant: number): Request | undefined {
  const route = `${op.method} ${op.path}`;
  const values = op.pathParams.map((n) => (n === 'id' ? ids.id : n === 'integrationId' ? ids.integrationId : n === 'connectionId' ? ids.connectionId : n === 'version' ? String(1 + (variant % 2)) : ids.other));
  const path = fillPath(op, values);
  const fresh = marker('iso');
  const bodies: Record<string, unknown> = {
    'PATCH /v1/credentials/{id}': { tags: { k: 'v' } },
    'POST /v1/credentials/{id}/rotate': { value: fresh },
    'POST /v1/credentials/{id}/rollback': { version: 1 },
    'POST /v1/rotation/credentials/{id}/rotate': { value: fresh, reason: 'isolation' },
    'POST /v1/rotation/credentials/{id}/rollback': { version: 1, reason: 'isolation' },
    'POST /v1/rotation/credentials/{id}/unrevoke': { reason: 'isolation' },
    'POST /v1/oauth/connections/{integrationId}/{connectionId}/tokens': { access_token: fresh, refresh_token: marker('iso'), expires_in: 3600 },
  };
  if (route.endsWith('/verify') && op.path.includes('/webhooks/')) {
    const payload = '{"type":"isolation"}';
    const at = new Date(Math.floor(Date.now() / 1000) * 1000);
    const secret = ids.webhookSecret ?? `whsec_${randomBytes(32).toString('base64')}`;
    const headers = { 'content-type': 'application/json', 'webhook-id': 'msg_iso', 'webhook-timestamp': String(at.getTime() / 1000), 'webhook-signature': new Webhook(secret).sign('msg_iso', at, payload) };
    return { method: op.method, path, body: payload, headers };
  }
  if (op.pathParams.length === 0) {
    // Routes addressed by ids in the query or the body.
    const byQuery: Record<string, string> = {
      'GET /v1/audit': `?resource=${ids.id}`,
      'GET /v1/rotation/policies/scope': `?level=credential&target=${ids.id}`,
      'DELETE /v1/rotation/policies': `?level=credential&target=${ids.id}`,
      'GET /v1/credentials': `?integrationId=${ids.integrationId}&connectionId=${ids.connectionId}`,
    };
    const byBody: Record<string, unknown> = {
      'POST /v1/credentials/delete-batch': { ids: [ids.id] },
      'POST /v1/rotation/revoke': variant % 2 ? { credentialId: ids.id, reason: 'isolation' } : { integrationId: ids.integrationId, connectionId: ids.connectionId, reason: 'isolation' },
      'PUT /v1/rotation/policies': { level: 'credential', target: ids.id, rotateAfterDays: 30 },
    };
    if (route in byQuery) return { method: op.method, path: `${path}${byQuery[route]}` };
    if (route in byBody) return { method: op.method, path, body: byBody[route] };
    return undefined;
  }
  return { method: op.method, path, body: op.method === 'GET' || op.method === 'DELETE' ? undefined : (bodies[route] ?? {}) };
}

/**
 * `text` with the ids of one side of a comparison replaced by their role, and any other id that is not
 * one of the other tenant's (ids of A's own things, created on each side) by `<uuid>`.
 */
function mask(text: string, ids: Ids, otherTenantIds: string[]): string {
  const sent = text.split(ids.id).join('<id>').split(ids.connectionId).join('<connection>').split(ids.other).join('<other>');
  // An instant in a message is when A's own request ran (e.g. "cooling down … until <time>" of a connection A
  // created under that name): the two sides of a pair run a moment apart, so it is masked.
  return sent
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, (u) => (otherTenantIds.includes(u) ? u : '<uuid>'))
    .replace(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z/g, '<time>');
}

/** What a client can tell apart: the status, an error's fields (not its request id), a success's shape. */
function observable(res: ApiResponse): unknown {
  if (res.status >= 400) {
    const b = res.body ?? {};
    return { status: res.status, error: b.error, message: b.message, code: b.code, codeName: b.codeName };
  }
  return { status: res.status, shape: shapeOf(res.body) };
}

function shapeOf(v: unknown): unknown {
  if (Array.isArray(v)) return v.length === 0 ? [] : [shapeOf(v[0]), `×${v.length}`];
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, shapeOf((v as Record<string, unknown>)[k])]));
  return v === null ? null : typeof v;
}

async function send(call: ApiClient, baseUrl: string, apiKey: string, r: Request): Promise<ApiResponse> {
  if (!r.headers) return call(r.method, r.path, r.body);
  const res = await fetch(`${baseUrl}${r.path}`, { method: r.method, headers: { 'x-api-key': apiKey, ...r.headers }, body: r.body as string, signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  return { status: res.status, text, body: text ? (JSON.parse(text) as unknown) : undefined, headers: res.headers };
}

/**
 * Tenant isolation: tenant A addresses tenant B's credentials, connections and webhook secrets by their
 * ids and names on every route of the OpenAPI document; each answer is compared with the answer to the
 * same request with ids that exist nowhere. Afterwards nothing of B (its hidden names, tag marker,
 * tenant id, credential ids) shows in A's lists, statistics, connections, audit, policies or /metrics,
 * and B's own view of its data is unchanged.
 */
export async function isolation(p: Profile, o: { seed?: number } = {}): Promise<PartResult> {
  const started = performance.now();
  const seed = o.seed ?? (Date.now() ^ 0x150) >>> 0;
  const examples = new Examples();
  const a = tenantKey('iso-a', 'tenant-a');
  const b = tenantKey('iso-b', `tenant-b${randomBytes(3).toString('hex')}`);
  const host = await startTestHost('sqlite', { AUTH_API_KEYS: JSON.stringify([a.entry, b.entry]), ...QUIET_HOST_ENV });
  try {
    const asA = apiClient(host.baseUrl, a.key);
    const asB = apiClient(host.baseUrl, b.key);
    const must = async (res: Promise<ApiResponse>, what: string) => {
      const r = await res;
      if (r.status >= 300) throw new Error(`seeding ${what}: ${r.status} ${r.text}`);
      return r;
    };
    // B: credentials under hidden names (only ever addressed by id), and pairs A addresses by name.
    const hidden = `hid${randomBytes(4).toString('hex')}`;
    const tagMark = marker('tag');
    const bIds: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await must(asB('POST', '/v1/credentials', { integrationId: hidden, connectionId: `${hidden}c${i}`, type: 'api_key', value: marker('bv'), valueStore: i % 2 ? 'vault' : 'envelope', tags: { owner: tagMark } }), 'credential');
      await must(asB('POST', `/v1/credentials/${r.body.id}/rotate`, { value: marker('bv') }), 'rotate');
      bIds.push(r.body.id);
    }
    await must(asB('PUT', '/v1/rotation/policies', { level: 'credential', target: bIds[0], rotateAfterDays: 30 }), 'policy');
    const pairs: { integrationId: string; connectionId: string; webhookSecret?: string }[] = [];
    // Providers are the host's, not a tenant's: every integration used here has one (never called).
    const integrations = ['isoint0', 'isoint1', 'isoint2'];
    for (const integrationId of integrations) await registerOAuthProvider(host.app, integrationId, { tokenEndpoint: 'http://127.0.0.1:9/token' });
    for (let i = 0; i < 6; i++) {
      const integrationId = integrations[i % integrations.length];
      const connectionId = `connb${randomBytes(3).toString('hex')}`;
      await must(asB('POST', `/v1/oauth/connections/${integrationId}/${connectionId}/tokens`, { access_token: marker('bat'), refresh_token: marker('brt'), expires_in: 3600 }), 'tokens');
      const wh = await must(asB('POST', `/v1/rotation/webhooks/${integrationId}/${connectionId}/secret`, {}), 'webhook secret');
      pairs.push({ integrationId, connectionId, webhookSecret: wh.body.secret });
    }
    // A has data of its own, so its lists are not trivially empty.
    await must(asA('POST', '/v1/credentials', { integrationId: 'mine', connectionId: 'a1', type: 'api_key', value: marker('av') }), 'A credential');

    const bView = async () => {
      const parts = [await asB('GET', '/v1/credentials?limit=500'), await asB('GET', '/v1/connections'), await asB('GET', '/v1/credentials/statistics'), await asB('GET', '/v1/rotation/policies')];
      for (const pr of pairs) parts.push(await asB('GET', `/v1/rotation/webhooks/${pr.integrationId}/${pr.connectionId}/versions`));
      for (const id of bIds) parts.push(await asB('GET', `/v1/credentials/${id}/versions`));
      return parts.map((r) => `${r.status} ${r.text}`).join('\n');
    };
    const bBefore = await bView();

    const operations = (await fetchOperations(host.baseUrl)).filter((op) => op.secured);
    // Each of B's ids has a ghost: an id that exists nowhere, used for the same draws, so whatever A's own
    // earlier requests left behind (audit rows, things A created under those names) is the same for both.
    const ghostIds = bIds.map(() => randomUUID());
    const ghostConnections = pairs.map(() => `ghost${randomBytes(3).toString('hex')}`);
    const bOther = `bother${randomBytes(3).toString('hex')}`;
    const ghostOther = `gother${randomBytes(3).toString('hex')}`;
    let compared = 0;
    let differing = 0;
    const serverErrors = new Examples(3);
    let skipped = 0;
    const covered = new Set<string>();
    const plan = fc.sample(fc.tuple(fc.constantFrom(...operations), fc.nat(bIds.length - 1), fc.nat(pairs.length - 1), fc.nat(3), fc.boolean()), { numRuns: p.isolation.requests, seed });
    for (const [op, idIndex, pairIndex, variant, ghostFirst] of plan) {
      const pair = pairs[pairIndex];
      const ghost: Ids = { id: ghostIds[idIndex], integrationId: pair.integrationId, connectionId: ghostConnections[pairIndex], other: ghostOther, webhookSecret: pair.webhookSecret };
      const cross: Ids = { id: bIds[idIndex], integrationId: pair.integrationId, connectionId: pair.connectionId, other: bOther, webhookSecret: pair.webhookSecret };
      const reqGhost = requestFor(op, ghost, variant);
      if (!reqGhost) {
        skipped++;
        continue;
      }
      const reqCross = requestFor(op, cross, variant)!;
      const [resGhost, resCross] = ghostFirst
        ? [await send(asA, host.baseUrl, a.key, reqGhost), await send(asA, host.baseUrl, a.key, reqCross)]
        : [undefined, await send(asA, host.baseUrl, a.key, reqCross)];
      const ghostAnswer = resGhost ?? (await send(asA, host.baseUrl, a.key, reqGhost));
      compared++;
      covered.add(`${op.method} ${op.path}`);
      // A message may name the id the client sent: compare with each side's own ids masked.
      const x = mask(JSON.stringify(observable(resCross)), cross, bIds);
      const y = mask(JSON.stringify(observable(ghostAnswer)), ghost, bIds);
      if (x !== y) {
        differing++;
        examples.add(`${op.method} ${op.path}: another tenant's ids → ${x.slice(0, 240)}; missing ids → ${y.slice(0, 240)}`);
      }
      // Context only (a 5xx alike on both sides tells nothing): kept apart so it never crowds out a violation.
      if (resCross.status >= 500) serverErrors.add(`5xx on ${op.method} ${op.path} (both sides ${x === y ? 'alike' : 'differ'}): ${resCross.text.slice(0, 160)}`);
    }

    // Nothing of B in anything A can see.
    // B's connection names are left out: A may create things of its own under any name, B's included.
    const secrets = [b.entry.tenant, hidden, tagMark, ...bIds];
    const views: [string, string][] = [];
    for (const path of ['/v1/credentials?limit=500', '/v1/credentials/statistics', '/v1/credentials/expiring?days=3650', '/v1/connections', '/v1/rotation/policies', '/v1/rotation/due', '/v1/rotation/expiries', '/v1/rotation/notifications/settings']) {
      views.push([path, (await asA('GET', path)).text]);
    }
    // A's audit holds the ids A itself sent (a missing id is audited the same way): only B's names, tags and tenant must not be there.
    views.push(['/v1/audit', (await asA('GET', '/v1/audit?limit=500')).text]);
    views.push(['/metrics', await (await fetch(`${host.baseUrl}/metrics`)).text()]);
    let leaks = 0;
    for (const [where, text] of views) {
      for (const s of secrets) {
        if (where === '/v1/audit' && bIds.includes(s)) continue;
        if (text.includes(s)) {
          leaks++;
          examples.add(`${where} (as tenant A) contains tenant B's ${s === b.entry.tenant ? 'tenant id' : bIds.includes(s) ? 'credential id' : 'name or tag'}`);
        }
      }
    }
    const bAfter = await bView();
    const bChanged = bAfter === bBefore ? 0 : 1;
    if (bChanged) examples.add("tenant B's own view of its data changed during A's requests");
    return {
      part: 'Tenant isolation',
      profile: p.name,
      method:
        "One host (SQLite), tenants A and B. B has credentials under names A never sends (addressed only by id; vault and envelope stores, rotated, a credential-level policy) and connections with OAuth tokens and a webhook secret. fast-check picks a route of the OpenAPI document (secured routes only; new routes included), one of B's credential ids and one of B's connection names; A sends the request once with B's ids and once with ids that exist nowhere, with a body the route accepts (so the request reaches the lookup, not validation) — a webhook verify request is signed with B's real secret. The two answers must be indistinguishable: same status, same error/message/code, same shape of a success. Each of B's ids and names has a fixed ghost used in the same draws (in random order), so whatever A's earlier requests left behind — its audit rows, things it created for itself under B's names (storing tokens, generating a webhook secret) — is the same on both sides; an error message that names the id sent is compared with that id masked. Then A's lists, statistics, expiring, connections, policies, due/expiries, notification settings, audit query and /metrics must contain nothing of B (tenant id, hidden names, tag marker, credential ids — except in A's audit, which records the ids A sent), and B's own view (lists, versions, webhook versions, policies) must be byte-identical before and after.",
      ran: `${compared} request pairs (seed ${seed}) over ${covered.size} routes (${skipped} draws skipped: a route without ids to fill).`,
      figures: [
        info('request pairs compared', compared),
        info('routes covered', covered.size),
        bounded("answers that tell another tenant's id from a missing one", differing, '=', 0),
        bounded("places showing the other tenant's data to A", leaks, '=', 0),
        bounded("changes to the other tenant's data", bChanged, '=', 0),
      ],
      examples: examples.list.length ? [...examples.list, ...serverErrors.list, `replay with seed ${seed}`] : [],
      durationS: Math.round((performance.now() - started) / 1000),
    };
  } finally {
    await host.close();
  }
}
