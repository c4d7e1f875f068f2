import { randomBytes, randomUUID } from 'node:crypto';
import { AuditService } from '@app/audit';
import { Clock, OutboxEventEntity } from '@app/common';
import { RotationNoticeEntity, WebhookSecretRotationJob } from '@app/rotation';
import { DATABASE_KINDS } from '@app/testing';
import { Webhook } from 'standardwebhooks';
import { DataSource } from 'typeorm';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { startTestHost, TestHost, ROTATION_JOBS_OFF } from './support/host';

const MINUTE = 60_000;
const DAY = 86_400_000;

/**
 * The stock host rotates webhook secrets of providers it has no updater for, with the operator in the
 * loop, over real HTTP on both databases: stage (the new secret answered once; both verify), install
 * it by hand, activate (the previous one verifies through WEBHOOK_SECRET_OVERLAP_MS), or discard; a
 * staged secret left unactivated past WEBHOOK_SECRET_STAGED_TTL_MS is discarded; the job raises one
 * `webhook_secret.rotation_due` per due secret version instead of failing every run.
 */
describe.each(DATABASE_KINDS)('operator-confirmed webhook secret rotation over HTTP on %s', (kind) => {
  let host: TestHost;
  let base: string;
  let shiftMs = 0;
  const reader = generateApiKey('acme-reader', 'acme', ['rotation:read']);
  const rotator = generateApiKey('acme-rotator', 'acme', ['rotation:read', 'rotation:write']);
  const other = generateApiKey('globex', 'globex', ['admin']);
  const lister = generateApiKey('acme-lister', 'acme', ['credentials:read']);
  const deleter = generateApiKey('acme-deleter', 'acme', ['credentials:write']);
  const secrets: string[] = [];
  const payload = '{"type":"invoice.paid","id":"evt_1"}';

  interface Answer {
    status: number;
    text: string;
    headers: Headers;
    body: Record<string, any>;
  }
  const call = async (key: string, method: string, path: string, body?: unknown): Promise<Answer> => {
    const headers: Record<string, string> = { 'x-api-key': key };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, text, headers: res.headers, body: text ? JSON.parse(text) : {} };
  };
  const now = () => new Date(Date.now() + shiftMs);
  /** Verifies `payload` signed with `secret` (at the host's time): the matching version, or the refusal's status. */
  const verifies = async (hooks: string, secret: string) => {
    const at = now();
    const msgId = `msg_${randomBytes(6).toString('hex')}`;
    const headers = { 'webhook-id': msgId, 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': new Webhook(secret).sign(msgId, at, payload) };
    const res = await fetch(`${base}${hooks}/verify`, { method: 'POST', headers: { 'x-api-key': reader.key, 'content-type': 'application/json', ...headers }, body: payload });
    const body = (await res.json()) as { version?: number | null };
    return res.status === 200 ? body.version : res.status;
  };
  const expectNoSecret = (a: Answer) => {
    for (const s of secrets) expect(a.text).not.toContain(s);
  };
  const create = async (hooks: string) => {
    const created = await call(rotator.key, 'POST', `${hooks}/secret`, {});
    expect(created.status).toBe(201);
    secrets.push(created.body.secret);
    return created.body as { id: string; secret: string };
  };
  const stage = async (hooks: string) => {
    const staged = await call(rotator.key, 'POST', `${hooks}/secret/stage`);
    expect(staged.status).toBe(201);
    secrets.push(staged.body.secret);
    return staged;
  };
  /** Moves the host's clock (every lib reads the host's Clock) without sleeping. */
  const shift = (ms: number) => {
    shiftMs += ms;
  };

  beforeAll(async () => {
    host = await startTestHost(kind, {
      AUTH_API_KEYS: JSON.stringify([reader.entry, rotator.entry, other.entry, lister.entry, deleter.entry]),
      ...ROTATION_JOBS_OFF,
      WEBHOOK_SECRET_ROTATION_ENABLED: 'false', // run by the test, on the host's own job
      WEBHOOK_SECRET_OVERLAP_MS: String(30 * MINUTE),
      WEBHOOK_SECRET_STAGED_TTL_MS: String(10 * MINUTE),
      NOTIFICATIONS_WEBHOOK_ENABLED: 'false',
      LOG_LEVEL: 'debug',
    });
    base = host.baseUrl;
    const clock = host.app.get(Clock);
    jest.spyOn(clock, 'now').mockImplementation(() => now());
    jest.spyOn(clock, 'nowMs').mockImplementation(() => now().getTime());
  });

  afterAll(async () => {
    jest.restoreAllMocks();
    await host?.close();
  });

  it('stage answers the new secret once; both verify; activate makes it current and keeps the previous one for the overlap window', async () => {
    const HOOKS = '/v1/rotation/webhooks/acme-pay/main';
    const { id, secret: first } = await create(HOOKS);
    expect((await call(reader.key, 'POST', `${HOOKS}/secret/stage`)).status).toBe(403);
    expect((await call(other.key, 'POST', `${HOOKS}/secret/stage`)).status).toBe(404);
    // The automatic path needs an updater the stock host does not have, and says what to do instead.
    const automatic = await call(rotator.key, 'POST', `${HOOKS}/rotate`);
    expect(automatic.status).toBe(409);
    expect(automatic.body).toMatchObject({ codeName: 'WEBHOOK_UPDATER_NOT_REGISTERED' });
    expect(automatic.body.message).toContain('secret/stage');

    const staged = await stage(HOOKS);
    expect(staged.headers.get('cache-control')).toBe('no-store');
    expect(staged.body).toMatchObject({ credentialId: id, replacesVersion: 1 });
    expect(staged.body.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Date.parse(staged.body.activateBefore) - Date.parse(staged.body.stagedAt)).toBe(10 * MINUTE);
    const second = staged.body.secret as string;

    const again = await call(rotator.key, 'POST', `${HOOKS}/secret/stage`);
    expect(again.status).toBe(409);
    expect(again.body.codeName).toBe('WEBHOOK_SECRET_ALREADY_STAGED');
    expectNoSecret(again);
    const versions = await call(reader.key, 'GET', `${HOOKS}/versions`);
    expect(versions.body.items.map((v: { version: number | null; state: string }) => [v.version, v.state])).toEqual([
      [null, 'pending'],
      [1, 'current'],
    ]);
    expectNoSecret(versions);
    expect(await verifies(HOOKS, first)).toBe(1);
    expect(await verifies(HOOKS, second)).toBeNull();

    expect((await call(reader.key, 'POST', `${HOOKS}/secret/activate`, {})).status).toBe(403);
    expect((await call(rotator.key, 'POST', `${HOOKS}/secret/activate`, { rotationId: 'not-a-uuid' })).status).toBe(400);
    const mismatch = await call(rotator.key, 'POST', `${HOOKS}/secret/activate`, { rotationId: randomUUID() });
    expect([mismatch.status, mismatch.body.codeName]).toEqual([409, 'WEBHOOK_STAGED_ROTATION_MISMATCH']);

    shift(2 * MINUTE); // the operator installs it in the provider's dashboard
    const activatedAt = now().getTime();
    const activated = await call(rotator.key, 'POST', `${HOOKS}/secret/activate`, { rotationId: staged.body.rotationId });
    expect(activated.status).toBe(200);
    expect(activated.body).toMatchObject({ credentialId: id, outcome: 'rotated', rotationId: staged.body.rotationId, version: 2, previousVersion: 1 });
    expect(Math.abs(Date.parse(activated.body.previousLiveUntil) - (activatedAt + 30 * MINUTE))).toBeLessThan(5000);
    expectNoSecret(activated);
    expect(await verifies(HOOKS, second)).toBe(2);
    expect(await verifies(HOOKS, first)).toBe(1);
    shift(31 * MINUTE);
    expect(await verifies(HOOKS, first)).toBe(401);
    const none = await call(rotator.key, 'POST', `${HOOKS}/secret/activate`);
    expect([none.status, none.body.codeName]).toEqual([409, 'WEBHOOK_NOTHING_STAGED']);

    const audit = host.app.get(AuditService);
    await audit.flush();
    const rows = await audit.query({ tenantId: 'acme', resource: id });
    const steps = rows.items.filter((r) => r.action.startsWith('webhook_secret.')).map((r) => [r.action, r.actorId]);
    expect(steps).toEqual(expect.arrayContaining([['webhook_secret.staged', 'api-key:acme-rotator'], ['webhook_secret.rotated', 'api-key:acme-rotator']]));
  });

  it('a verify refused on its headers alone (no id, a stale timestamp, no signature) reads no secret: no vault read, no read audited', async () => {
    const hooks = `/v1/rotation/webhooks/shop/h-${randomBytes(3).toString('hex')}`;
    const { id, secret } = await create(hooks);
    const audit = host.app.get(AuditService);
    const readsOf = async () => {
      await audit.flush();
      return (await audit.query({ tenantId: 'acme', resource: id, action: ['read'] })).items.length;
    };
    const before = await readsOf();
    const at = now();
    const seconds = String(Math.floor(at.getTime() / 1000));
    const signature = new Webhook(secret).sign('msg_1', at, payload);
    for (const [headers, status, code] of [
      [{ 'webhook-timestamp': seconds, 'webhook-signature': signature }, 400, 'WEBHOOK_MISSING_ID'],
      [{ 'webhook-id': 'msg_1', 'webhook-timestamp': String(Number(seconds) - 3600), 'webhook-signature': signature }, 401, 'WEBHOOK_TIMESTAMP_TOO_OLD'],
      [{ 'webhook-id': 'msg_1', 'webhook-timestamp': seconds }, 400, 'WEBHOOK_MISSING_SIGNATURE'],
    ] as const) {
      const res = await fetch(`${base}${hooks}/verify`, { method: 'POST', headers: { 'x-api-key': reader.key, 'content-type': 'application/json', ...headers }, body: payload });
      expect([res.status, ((await res.json()) as { codeName?: string }).codeName]).toEqual([status, code]);
    }
    expect(await readsOf()).toBe(before);
    // A well-formed one still reads (and audits) the secret it checks.
    expect(await verifies(hooks, secret)).toBe(1);
    expect(await readsOf()).toBeGreaterThan(before);
  });

  it("a staged secret is not one of the tenant's credentials in its lists (GET /v1/credentials, /v1/connections, statistics) unless includeInternal=true; read by id", async () => {
    const INTEGRATION = 'acme-lists';
    const HOOKS = `/v1/rotation/webhooks/${INTEGRATION}/main`;
    const { id } = await create(HOOKS);
    const staged = await stage(HOOKS);
    const stagedConnection = `whsec-pending.${staged.body.rotationId}`;
    const listed = async (query: string) => {
      const page = await call(lister.key, 'GET', `/v1/credentials?integrationId=${INTEGRATION}${query}`);
      expect(page.status).toBe(200);
      return page.body.items.map((c: { id: string; connectionId: string }) => c.connectionId);
    };
    expect(await listed('')).toEqual(['main']);
    expect(await listed('&limit=1')).toEqual(['main']);
    expect(await listed('&includeInternal=true')).toEqual(['main', stagedConnection]);
    expect(await listed('&includeInternal=false')).toEqual(['main']);
    // Naming the staged connection asks for it.
    expect(await listed(`&connectionId=${stagedConnection}`)).toEqual([stagedConnection]);
    expect(await listed(`&connectionId=${stagedConnection}&includeInternal=false`)).toEqual([]);
    expect((await call(lister.key, 'GET', '/v1/credentials?includeInternal=yes')).status).toBe(400);

    const connections = async (query: string) =>
      (await call(lister.key, 'GET', `/v1/connections${query}`)).body.items.filter((c: { integrationId: string }) => c.integrationId === INTEGRATION).map((c: { connectionId: string }) => c.connectionId);
    expect(await connections('')).toEqual(['main']);
    expect(await connections('?includeInternal=true')).toEqual(['main', stagedConnection]);
    const statistics = async (query: string) => (await call(lister.key, 'GET', `/v1/credentials/statistics${query}`)).body.byIntegration[INTEGRATION];
    expect(await statistics('')).toBe(1);
    expect(await statistics('?includeInternal=true')).toBe(2);
    expect((await call(lister.key, 'GET', '/v1/credentials/expiring?days=30&includeInternal=true')).status).toBe(200);

    const all = await call(lister.key, 'GET', `/v1/credentials?integrationId=${INTEGRATION}&includeInternal=true`);
    const stagedId = all.body.items.find((c: { connectionId: string }) => c.connectionId === stagedConnection).id as string;
    expect((await call(lister.key, 'GET', `/v1/credentials/${stagedId}`)).body).toMatchObject({ connectionId: stagedConnection, type: 'custom_secret' });
    expect(all.body.items.map((c: { id: string }) => c.id)).toContain(id);
    expect((await call(rotator.key, 'POST', `${HOOKS}/secret/discard`, { rotationId: staged.body.rotationId })).status).toBe(200);
    // A connection id under the staging prefix is the host's: no webhook secret of a tenant's is created there.
    const reserved = await call(rotator.key, 'POST', `/v1/rotation/webhooks/${INTEGRATION}/${stagedConnection}/secret`, {});
    expect({ status: reserved.status, code: reserved.body.code }).toEqual({ status: 400, code: 2001 });
    expect((await call(lister.key, 'GET', `/v1/credentials?integrationId=${INTEGRATION}&includeInternal=true`)).body.items.map((c: { connectionId: string }) => c.connectionId)).toEqual(['main']);
  });

  it('DELETE /v1/credentials/{id} of the webhook secret discards its staged successor: not readable by id, audited DELETED', async () => {
    const INTEGRATION = 'acme-deleted';
    const HOOKS = `/v1/rotation/webhooks/${INTEGRATION}/main`;
    const { id } = await create(HOOKS);
    const staged = await stage(HOOKS);
    const all = await call(lister.key, 'GET', `/v1/credentials?integrationId=${INTEGRATION}&includeInternal=true`);
    const stagedId = all.body.items.find((c: { connectionId: string }) => c.connectionId === `whsec-pending.${staged.body.rotationId}`).id as string;
    expect((await call(lister.key, 'GET', `/v1/credentials/${stagedId}`)).status).toBe(200);

    expect((await call(deleter.key, 'DELETE', `/v1/credentials/${id}`)).status).toBe(204);
    // The delete's outbox event is dispatched after its commit.
    let status = 200;
    for (const until = Date.now() + 10_000; status === 200 && Date.now() < until; await new Promise((r) => setTimeout(r, 50))) {
      status = (await call(lister.key, 'GET', `/v1/credentials/${stagedId}`)).status;
    }
    expect(status).toBe(404);
    expect((await call(lister.key, 'GET', `/v1/credentials?integrationId=${INTEGRATION}&includeInternal=true`)).body.items).toEqual([]);
    const audit = host.app.get(AuditService);
    await audit.flush();
    const rows = (await audit.query({ tenantId: 'acme', resource: id })).items.filter((r) => r.action === 'webhook_secret.staged_discarded');
    expect(rows.map((r) => [r.actorId, r.result, r.details?.rotationId, r.details?.reason])).toEqual([['system:rotation', 'success', staged.body.rotationId, 'DELETED']]);
  });

  it('discard: the staged secret stops verifying; a staged secret left unactivated is refused (410) and discarded', async () => {
    const HOOKS = '/v1/rotation/webhooks/acme-pay/second';
    const { secret: first } = await create(HOOKS);
    expect((await call(rotator.key, 'POST', `${HOOKS}/secret/discard`)).body.codeName).toBe('WEBHOOK_NOTHING_STAGED');
    const staged = await stage(HOOKS);
    const discarded = await call(rotator.key, 'POST', `${HOOKS}/secret/discard`, { rotationId: staged.body.rotationId });
    expect(discarded.status).toBe(200);
    expect(discarded.body).toMatchObject({ rotationId: staged.body.rotationId, version: 1 });
    expect(await verifies(HOOKS, staged.body.secret)).toBe(401);
    expect(await verifies(HOOKS, first)).toBe(1);

    const late = await stage(HOOKS);
    shift(11 * MINUTE);
    const expired = await call(rotator.key, 'POST', `${HOOKS}/secret/activate`, { rotationId: late.body.rotationId });
    expect([expired.status, expired.body.codeName]).toEqual([410, 'WEBHOOK_STAGED_SECRET_EXPIRED']);
    expectNoSecret(expired);
    expect(await verifies(HOOKS, late.body.secret)).toBe(401);
    expect(await verifies(HOOKS, first)).toBe(1);

    // Forgotten altogether: the job discards it.
    const forgotten = await stage(HOOKS);
    shift(11 * MINUTE);
    const run = await host.app.get(WebhookSecretRotationJob).runOnce();
    expect(run).toMatchObject({ acquired: true, failed: 0 });
    expect(run.acquired && run.discarded).toBeGreaterThanOrEqual(1);
    expect(await verifies(HOOKS, forgotten.body.secret)).toBe(401);
    const states = (await call(reader.key, 'GET', `${HOOKS}/versions`)).body.items.map((v: { state: string; lastError: string | null }) => [v.state, v.lastError]);
    expect(states).toEqual([
      ['retired', 'STAGED_EXPIRED'],
      ['retired', 'STAGED_EXPIRED'],
      ['retired', 'DISCARDED'],
      ['current', null],
    ]);
  });

  it('the webhook-secret-rotation job raises webhook_secret.rotation_due once per due version — no failure, no warning — until the operator rotates', async () => {
    const HOOKS = '/v1/rotation/webhooks/acme-pay/third';
    const { id } = await create(HOOKS);
    const job = host.app.get(WebhookSecretRotationJob);
    const warnings = () => host.logs.filter((l) => /"level":(40|50)/.test(l) && /webhook/i.test(l));
    const warnedBefore = warnings().length;
    shift(181 * DAY); // past the default 180 days of a webhook secret's policy
    const first = await job.runOnce();
    expect(first).toMatchObject({ acquired: true, failed: 0 });
    expect(first.acquired && first.dueNotified).toBeGreaterThanOrEqual(1);
    await job.runOnce();
    await job.runOnce();
    const ds = host.app.get(DataSource);
    const due = async () => (await ds.getRepository(OutboxEventEntity).find({ where: { name: 'webhook_secret.rotation_due', tenantId: 'acme' } })).filter((e) => JSON.stringify(e.payload).includes(id));
    expect(await due()).toHaveLength(1);
    expect((await due())[0].payload).toMatchObject({ credentialId: id, integrationId: 'acme-pay', connectionId: 'third', version: 1 });
    expect(await ds.getRepository(RotationNoticeEntity).findBy({ credentialId: id })).toEqual([expect.objectContaining({ version: 1, notice: 'webhook_rotation_due' })]);
    expect(warnings()).toHaveLength(warnedBefore);

    const staged = await stage(HOOKS);
    expect((await call(rotator.key, 'POST', `${HOOKS}/secret/activate`, { rotationId: staged.body.rotationId })).body.version).toBe(2);
    await job.runOnce();
    expect(await due()).toHaveLength(1); // version 2 is not due yet
  });

  it('never puts a secret in a log line', () => {
    expect(secrets.length).toBeGreaterThanOrEqual(6);
    const text = host.logs.join('\n');
    for (const s of secrets) expect(text).not.toContain(s);
  });
});
