import { randomBytes } from 'node:crypto';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { AuditService } from '@app/audit';
import { KeyVaultProvider } from '@app/key-vault';
import { ExpiryMonitorService } from '@app/rotation';
import { DATABASE_KINDS } from '@app/testing';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { EmbeddedVault } from '../apps/api/src/vault/embedded-vault';
import { startTestHost, TestHost, ROTATION_JOBS_OFF } from './support/host';

/** The tenant-scoped rotation API through real HTTP, a real database and the local vault. */
describe.each(DATABASE_KINDS)('rotation HTTP API on %s', (kind) => {
  let host: TestHost;
  let base: string;
  const writer = generateApiKey('acme-writer', 'acme', ['credentials:read', 'credentials:read-value', 'credentials:write']);
  const rotator = generateApiKey('acme-rotator', 'acme', ['rotation:read', 'rotation:write']);
  const responder = generateApiKey('acme-responder', 'acme', ['credentials:revoke']);
  const patcher = generateApiKey('acme-patcher', 'acme', ['credentials:read', 'credentials:write', 'credentials:revoke']);
  const other = generateApiKey('globex', 'globex', ['admin']);
  const values: string[] = [];

  const call = async (key: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { 'x-api-key': key, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  const secret = () => {
    const v = `sk_live_${randomBytes(18).toString('hex')}`;
    values.push(v);
    return v;
  };
  let seq = 0;
  const store = async (type: string, extra: Record<string, unknown> = {}) => {
    const r = await call(writer.key, 'POST', '/v1/credentials', { integrationId: 'github', connectionId: `c${++seq}`, type, value: secret(), ...extra });
    expect(r.status).toBe(201);
    return r.body as { id: string; rowVersion: number };
  };

  beforeAll(async () => {
    host = await startTestHost(kind, {
      AUTH_API_KEYS: JSON.stringify([writer.entry, rotator.entry, responder.entry, patcher.entry, other.entry]),
      ...ROTATION_JOBS_OFF,
      LOG_LEVEL: 'debug',
    });
    base = host.baseUrl;
  });

  afterAll(async () => {
    await host?.close();
  });

  it('needs the rotation scopes', async () => {
    expect((await fetch(`${base}/v1/rotation/policies`)).status).toBe(401);
    expect((await call(writer.key, 'GET', '/v1/rotation/policies')).status).toBe(403);
    expect((await call(rotator.key, 'POST', '/v1/rotation/revoke', { tenant: true, reason: 'x' })).status).toBe(403);
  });

  it('creates, reads, explains and removes policy overrides; bad input is a 400 that changes nothing', async () => {
    const cred = await store('api_key');
    const put = await call(rotator.key, 'PUT', '/v1/rotation/policies', { level: 'integration', target: 'github', credentialType: 'api_key', rotateAfterDays: 30 });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ level: 'integration', target: 'github', credentialType: 'api_key', rotateAfterDays: 30, warnBeforeDays: null, rowVersion: 1 });
    expect((await call(rotator.key, 'GET', '/v1/rotation/policies')).body.items).toHaveLength(1);
    expect((await call(rotator.key, 'GET', '/v1/rotation/policies/scope?level=integration&target=github&credentialType=api_key')).body.id).toBe(put.body.id);

    const eff = await call(rotator.key, 'GET', `/v1/rotation/credentials/${cred.id}/policy`);
    expect(eff.status).toBe(200);
    expect(eff.body).toMatchObject({ rotateAfterDays: 30, warnBeforeDays: 14, rotation: 'manual', sources: { rotateAfterDays: { level: 'integration-type' }, warnBeforeDays: { level: 'default' } } });
    expect((await call(other.key, 'GET', `/v1/rotation/credentials/${cred.id}/policy`)).status).toBe(404);

    // A stale compare-and-set is a conflict (409), not bad input, and changes nothing.
    const stale = await call(rotator.key, 'PUT', '/v1/rotation/policies', { level: 'integration', target: 'github', credentialType: 'api_key', rotateAfterDays: 7, expectedVersion: 0 });
    expect(stale.status).toBe(409);
    expect(stale.body.code).toBe(3009);
    expect((await call(rotator.key, 'GET', '/v1/rotation/policies/scope?level=integration&target=github&credentialType=api_key')).body).toMatchObject({ rotateAfterDays: 30, rowVersion: 1 });
    const fresh = await call(rotator.key, 'PUT', '/v1/rotation/policies', { level: 'integration', target: 'github', credentialType: 'api_key', rotateAfterDays: 45, expectedVersion: 1 });
    expect(fresh.body).toMatchObject({ rotateAfterDays: 45, rowVersion: 2 });

    for (const bad of [{ level: 'tenant', rotateAfterDays: -1 }, { level: 'tenant', rotateAfterDays: '5' }, { level: 'galaxy', rotateAfterDays: 5 }, { level: 'tenant', rotateAfterDays: 5, sneaky: 1 }, { level: 'tenant' }]) {
      const r = await call(rotator.key, 'PUT', '/v1/rotation/policies', bad);
      expect(r.status).toBe(400);
    }
    expect((await call(rotator.key, 'DELETE', '/v1/rotation/policies?level=integration&target=github&credentialType=api_key')).status).toBe(204);
    const gone = await call(rotator.key, 'GET', '/v1/rotation/policies/scope?level=integration&target=github&credentialType=api_key');
    expect(gone.status).toBe(404);
    expect(gone.body.code).toBe(3003);
    expect((await call(rotator.key, 'GET', '/v1/rotation/policies')).body.items).toEqual([]);
  });

  it('answers a policy PUT that changes nothing 200 with the unchanged override: same rowVersion, no audit row; a stale expectedVersion is still 409', async () => {
    const scope = { level: 'integration', target: 'unchanged', credentialType: 'api_key' };
    const scopeQuery = '/v1/rotation/policies/scope?level=integration&target=unchanged&credentialType=api_key';
    const put = await call(rotator.key, 'PUT', '/v1/rotation/policies', { ...scope, rotateAfterDays: 30, rotation: 'manual' });
    expect(put.status).toBe(200);
    const stored = (await call(rotator.key, 'GET', scopeQuery)).body;
    for (const body of [{ ...scope, rotateAfterDays: 30 }, { ...scope, rotateAfterDays: 30, warnBeforeDays: null, rotation: 'manual', expectedVersion: 1 }]) {
      const again = await call(rotator.key, 'PUT', '/v1/rotation/policies', body);
      expect({ body, status: again.status, answer: again.body }).toEqual({ body, status: 200, answer: stored });
    }
    expect((await call(rotator.key, 'GET', scopeQuery)).body).toEqual(stored);
    const changes = async () => {
      const rows = await host.app.get(AuditService).query({ tenantId: 'acme', resource: `rotation-policy:${put.body.id}`, action: 'policy_change', order: 'asc' });
      return rows.items.map((r) => r.details?.changed);
    };
    expect(await changes()).toEqual([['rotateAfterDays', 'rotation']]);
    const stale = await call(rotator.key, 'PUT', '/v1/rotation/policies', { ...scope, rotateAfterDays: 30, expectedVersion: 0 });
    expect({ status: stale.status, code: stale.body.code }).toEqual({ status: 409, code: 3009 });
    // One field of two changed: the audit row names that one.
    const changed = await call(rotator.key, 'PUT', '/v1/rotation/policies', { ...scope, rotateAfterDays: 30, warnBeforeDays: 7, expectedVersion: 1 });
    expect({ status: changed.status, rowVersion: changed.body.rowVersion }).toEqual({ status: 200, rowVersion: 2 });
    expect(await changes()).toEqual([['rotateAfterDays', 'rotation'], ['warnBeforeDays']]);
    expect((await call(rotator.key, 'DELETE', '/v1/rotation/policies?level=integration&target=unchanged&credentialType=api_key')).status).toBe(204);
  });

  it('rotates with a given value, a generator or says no handler; rolls back; keeps the history', async () => {
    const key = await store('api_key');
    const given = secret();
    const r1 = await call(rotator.key, 'POST', `/v1/rotation/credentials/${key.id}/rotate`, { value: given, reason: 'ticket-42' });
    expect(r1.status).toBe(200);
    expect(r1.body).toMatchObject({ version: 2, fromVersion: 1, method: 'given' });
    const r2 = await call(rotator.key, 'POST', `/v1/rotation/credentials/${key.id}/rotate`, {});
    expect(r2.body).toMatchObject({ version: 3, method: 'generator' });
    const back = await call(rotator.key, 'POST', `/v1/rotation/credentials/${key.id}/rollback`, { version: 2, reason: 'generated key refused' });
    expect(back.body).toMatchObject({ version: 4 });
    expect((await call(writer.key, 'GET', `/v1/credentials/${key.id}/value`)).body.value).toBe(given);
    const history = await call(rotator.key, 'GET', `/v1/rotation/credentials/${key.id}/history`);
    expect(history.body.items.map((h: { method: string }) => h.method).sort()).toEqual(['generator', 'given', 'rollback']);
    expect(JSON.stringify(history.body)).not.toContain(given);

    const custom = await store('custom_secret');
    const none = await call(rotator.key, 'POST', `/v1/rotation/credentials/${custom.id}/rotate`, {});
    expect(none.status).toBe(409);
    expect(none.body.code).toBe(3004);
  });

  it('revokes: the next read answers 409 REVOKED (cache warm), un-revoke restores it; targets are validated', async () => {
    const cred = await store('api_key', { valueStore: 'vault' });
    const value = (await call(writer.key, 'GET', `/v1/credentials/${cred.id}/value`)).body.value;
    const rev = await call(responder.key, 'POST', '/v1/rotation/revoke', { credentialId: cred.id, reason: 'pasted in chat', severity: 'high' });
    expect(rev.status).toBe(200);
    expect(rev.body).toEqual({ revoked: [cred.id], vaultVersionsDisabled: 1, vaultFailures: [], gone: [] });
    const read = await call(writer.key, 'GET', `/v1/credentials/${cred.id}/value`);
    expect(read.status).toBe(409);
    expect(read.body.code).toBe(2009);

    expect((await call(responder.key, 'POST', '/v1/rotation/revoke', { credentialId: cred.id, tenant: true, reason: 'x' })).status).toBe(400);
    expect((await call(responder.key, 'POST', '/v1/rotation/revoke', { connectionId: 'c1', reason: 'x' })).status).toBe(400);
    expect((await call(responder.key, 'POST', '/v1/rotation/revoke', { credentialId: cred.id })).status).toBe(400);
    expect((await call(responder.key, 'POST', '/v1/rotation/revoke', { integrationId: 'nothing-here', reason: 'x' })).status).toBe(404);

    const un = await call(responder.key, 'POST', `/v1/rotation/credentials/${cred.id}/unrevoke`, { reason: 'false alarm' });
    expect(un.status).toBe(200);
    expect(un.body.status).toBe('active');
    expect((await call(writer.key, 'GET', `/v1/credentials/${cred.id}/value`)).body.value).toBe(value);
    expect((await call(responder.key, 'POST', `/v1/rotation/credentials/${cred.id}/unrevoke`, { reason: 'again' })).status).toBe(409);
  });

  /** What a revoke of `id` left: its vault versions' enabled flags, its revoke audit rows, history rows and events, a read. */
  const revokeTrail = async (id: string) => {
    const kv = host.app.get(KeyVaultProvider);
    const vault: boolean[] = [];
    for await (const s of kv.listAllSecrets()) {
      for await (const v of kv.listAllSecretVersions(s.name)) if (v.tags['cv-credential'] === id) vault.push(v.enabled);
    }
    const audit = host.app.get(AuditService);
    await audit.flush();
    const audited = (await audit.query({ tenantId: 'acme', resource: id, action: ['revoke'] })).items.map((r) => ({ result: r.result, details: r.details }));
    const history = (await call(rotator.key, 'GET', `/v1/rotation/credentials/${id}/history`)).body.items.map((h: Record<string, unknown>) => ({
      action: h.action,
      method: h.method,
      reason: h.reason,
      severity: h.severity,
    }));
    const outbox: { name: string; payload: string }[] = await host.app.get<DataSource>(getDataSourceToken()).query('SELECT name, payload FROM cv_outbox ORDER BY created_at');
    const events = outbox
      .map((e) => ({ name: e.name, payload: JSON.parse(e.payload) as Record<string, unknown> }))
      .filter((e) => e.payload.credentialId === id && e.name === 'credential.revoked')
      .map((e) => ({ name: e.name, reason: e.payload.reason, severity: e.payload.severity }));
    const read = (await call(writer.key, 'GET', `/v1/credentials/${id}/value`)).body.codeName;
    return { vault: vault.sort(), audited, history, events, read };
  };

  it('PATCH /v1/credentials/{id} to status revoked is the revoke route\'s revoke: reason, severity, audit, event, history, vault versions', async () => {
    const reason = 'pasted in a build log';
    const viaRoute = await store('api_key', { valueStore: 'vault' });
    const viaPatch = await store('api_key', { valueStore: 'vault' });
    for (const c of [viaRoute, viaPatch]) expect((await call(writer.key, 'POST', `/v1/credentials/${c.id}/rotate`, { value: secret() })).status).toBe(200);
    const routed = await call(responder.key, 'POST', '/v1/rotation/revoke', { credentialId: viaRoute.id, reason, severity: 'high' });
    expect(routed.body).toMatchObject({ revoked: [viaRoute.id], vaultVersionsDisabled: 2 });
    const patched = await call(patcher.key, 'PATCH', `/v1/credentials/${viaPatch.id}`, { status: 'revoked', reason, severity: 'high' });
    expect({ status: patched.status, id: patched.body.id, credentialStatus: patched.body.status }).toEqual({ status: 200, id: viaPatch.id, credentialStatus: 'revoked' });
    const expected = {
      vault: [false, false],
      audited: [{ result: 'success', details: expect.objectContaining({ reason, severity: 'high', critical: true }) }],
      history: [{ action: 'revoke', method: 'revoke', reason, severity: 'high' }],
      events: [{ name: 'credential.revoked', reason, severity: 'high' }],
      read: 'REVOKED',
    };
    expect(await revokeTrail(viaRoute.id)).toEqual(expected);
    expect(await revokeTrail(viaPatch.id)).toEqual(expected);

    // Without a reason: the route's default severity, and a reason that says where the revoke came from.
    const bare = await store('api_key', { valueStore: 'vault' });
    expect((await call(patcher.key, 'PATCH', `/v1/credentials/${bare.id}`, { status: 'revoked', expectedVersion: bare.rowVersion })).status).toBe(200);
    expect(await revokeTrail(bare.id)).toMatchObject({ vault: [false], audited: [{ details: { reason: expect.stringMatching(/PATCH/), severity: 'critical' } }] });

    // Refused before anything is written: a stale expectedVersion (409), a revoke mixed with other changes, a reason
    // without a revoke (400).
    const untouched = await store('api_key', { valueStore: 'vault' });
    for (const [body, status, code] of [
      [{ status: 'revoked', reason, expectedVersion: untouched.rowVersion + 1 }, 409, 'CONFLICT'],
      [{ status: 'revoked', reason, tags: { env: 'x' } }, 400, 'VALIDATION'],
      [{ tags: { env: 'x' }, reason }, 400, 'VALIDATION'],
      [{ status: 'needs_reauth', severity: 'low' }, 400, 'VALIDATION'],
    ] as const) {
      const r = await call(patcher.key, 'PATCH', `/v1/credentials/${untouched.id}`, body);
      expect({ status: r.status, code: r.body.codeName }).toEqual({ status, code });
    }
    expect(await call(patcher.key, 'GET', `/v1/credentials/${untouched.id}`)).toMatchObject({ body: { status: 'active', rowVersion: untouched.rowVersion, tags: {} } });
    // The stale one is audited as a refused revoke, as a stale rotate is; the others were refused for their shape.
    expect(await revokeTrail(untouched.id)).toEqual({ vault: [true], audited: [{ result: 'failure', details: expect.objectContaining({ reason }) }], history: [], events: [], read: undefined });
  });

  it('a PATCH to revoked whose vault versions cannot all be disabled: 409 REVOKE_INCOMPLETE, revoked all the same; sent again, it finishes', async () => {
    const vault = host.app.get(EmbeddedVault).emulator!;
    const cred = await store('api_key', { valueStore: 'vault' });
    vault.deny({ operations: ['updateSecret'] });
    let refused: Awaited<ReturnType<typeof call>>;
    try {
      refused = await call(patcher.key, 'PATCH', `/v1/credentials/${cred.id}`, { status: 'revoked', reason: 'leaked' });
    } finally {
      vault.clearDenials();
    }
    expect(refused).toMatchObject({ status: 409, body: { code: 2013, codeName: 'REVOKE_INCOMPLETE' } });
    expect(refused.body.message).toMatch(/is revoked .*Revoke it again to finish/);
    expect(refused.body.message).not.toMatch(/cv-|acme|github/); // no vault secret name (it carries the tenant and ids)
    // Revoked (reads refused, the revoke recorded, the vault failure audited) with its vault version still enabled.
    const half = await revokeTrail(cred.id);
    expect({ vault: half.vault, read: half.read, audited: half.audited.map((r) => r.result).sort() }).toEqual({ vault: [true], read: 'REVOKED', audited: ['failure', 'success'] });
    // Sent again, it finishes: no second revoke row, its vault version disabled.
    expect(await call(patcher.key, 'PATCH', `/v1/credentials/${cred.id}`, { status: 'revoked', reason: 'leaked' })).toMatchObject({ status: 200, body: { status: 'revoked' } });
    expect(await revokeTrail(cred.id)).toMatchObject({ vault: [false], audited: half.audited });
  });

  it('a PATCH to revoked with expectedVersion left unfinished: the same body again is CONFLICT (the revoke moved rowVersion); with the rowVersion it has now, it finishes', async () => {
    const vault = host.app.get(EmbeddedVault).emulator!;
    const cred = await store('api_key', { valueStore: 'vault' });
    const body = { status: 'revoked', reason: 'leaked', expectedVersion: cred.rowVersion };
    vault.deny({ operations: ['updateSecret'] });
    try {
      expect(await call(patcher.key, 'PATCH', `/v1/credentials/${cred.id}`, body)).toMatchObject({ status: 409, body: { codeName: 'REVOKE_INCOMPLETE' } });
    } finally {
      vault.clearDenials();
    }
    expect(await call(patcher.key, 'PATCH', `/v1/credentials/${cred.id}`, body)).toMatchObject({ status: 409, body: { codeName: 'CONFLICT' } });
    expect((await revokeTrail(cred.id)).vault).toEqual([true]);
    const now = await call(patcher.key, 'GET', `/v1/credentials/${cred.id}`);
    expect(now.body).toMatchObject({ status: 'revoked' });
    expect(await call(patcher.key, 'PATCH', `/v1/credentials/${cred.id}`, { ...body, expectedVersion: now.body.rowVersion })).toMatchObject({ status: 200, body: { status: 'revoked' } });
    expect((await revokeTrail(cred.id)).vault).toEqual([false]);
  });

  it('lists upcoming expiries and due rotations', async () => {
    const soon = await store('api_key', { connectionId: 'expiring', expiresAt: new Date(Date.now() + 5 * 86_400_000).toISOString() });
    const exp = await call(rotator.key, 'GET', '/v1/rotation/expiries?days=7');
    expect(exp.status).toBe(200);
    expect(exp.body.items.map((i: { credential: { id: string } }) => i.credential.id)).toContain(soon.id);
    expect(exp.body.items.find((i: { credential: { id: string } }) => i.credential.id === soon.id)).toMatchObject({ warnBeforeDays: 14 });
    expect((await call(rotator.key, 'GET', '/v1/rotation/due')).body.items).toEqual([]);
    const later = await call(rotator.key, 'GET', '/v1/rotation/due?days=91');
    expect(later.body.items.map((i: { credential: { id: string } }) => i.credential.id)).toContain(soon.id);
    expect((await call(rotator.key, 'GET', '/v1/rotation/due?days=0x5')).status).toBe(400);
  });

  it('publishes rotations and revocations on /metrics, and the expiry windows once the monitor ran', async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(Number(/^credential_vault_rotations_total (\d+)/m.exec(text)?.[1])).toBeGreaterThanOrEqual(2);
    expect(Number(/^credential_vault_revocations_total (\d+)/m.exec(text)?.[1])).toBeGreaterThanOrEqual(1);
    await host.app.get(ExpiryMonitorService).runOnce();
    const after = await (await fetch(`${base}/metrics`)).text();
    expect(Number(/^credential_vault_credentials_expiring\{window="7d"\} (\d+)/m.exec(after)?.[1])).toBeGreaterThanOrEqual(1);
    expect(after).not.toMatch(/credential_vault_credentials_expiring\{[^}]*(tenant|credential)/);
  });

  it('never puts a value in a log line', () => {
    const logged = host.logs.join('\n');
    for (const v of values) expect(logged).not.toContain(v);
  });
});
