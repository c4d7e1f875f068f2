import { randomBytes } from 'node:crypto';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { AuditAnchorService, AuditAnchorStore, AuditLogEntry, AuditService } from '@app/audit';
import { auditAnchorSecretName } from '@app/credentials';
import { KeyVaultProvider } from '@app/key-vault';
import { DATABASE_KINDS } from '@app/testing';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { startTestHost, TestHost } from './support/host';

/**
 * The host with its default configuration anchors each audit chain head in Key Vault, so a chain
 * whose newest rows are deleted straight from the database no longer verifies.
 */
describe.each(DATABASE_KINDS)('audit anchoring in the reference host on %s', (kind) => {
  let host: TestHost;
  const tenantId = 'anchored';
  const root = generateApiKey('anchored-root', tenantId, ['admin']);
  const damagedRoot = generateApiKey('damaged-root', 'damaged', ['admin']);

  const call = async (method: string, path: string, body?: unknown, key = root.key) => {
    const res = await fetch(`${host.baseUrl}${path}`, {
      method,
      headers: { 'x-api-key': key, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };

  beforeAll(async () => {
    host = await startTestHost(kind, { AUTH_API_KEYS: JSON.stringify([root.entry, damagedRoot.entry]), CREDENTIALS_INTEGRATIONS: 'github' });
  });
  afterAll(async () => {
    await host?.close();
  });

  it('verifies the anchored chain, and reports it truncated once its newest rows are deleted', async () => {
    const { app } = host;
    const created = await call('POST', '/v1/credentials', {
      integrationId: 'github',
      connectionId: 'main',
      type: 'api_key',
      value: `sk_live_${randomBytes(12).toString('hex')}`,
    });
    expect(created.status).toBe(201);
    for (let i = 0; i < 2; i++) expect((await call('GET', `/v1/credentials/${created.body.id}/value`)).status).toBe(200);
    await app.get(AuditService).flush(); // reads are audited in batches

    const run = await app.get(AuditAnchorService).runOnce();
    expect(run).toMatchObject({ acquired: true, refused: [] });
    expect(run.anchored).toBeGreaterThanOrEqual(1);

    // The anchor in Key Vault is the chain's head.
    const ds = app.get<DataSource>(getDataSourceToken());
    const rows = ds.getRepository(AuditLogEntry);
    const head = await rows.findOneOrFail({ where: { tenantId }, order: { sequence: 'DESC' } });
    expect(head.sequence).toBeGreaterThanOrEqual(3);
    const anchor = await app.get(AuditAnchorStore).read(tenantId);
    expect(anchor).toMatchObject({ tenantId, sequence: head.sequence, hash: head.hash });

    const before = await call('POST', '/v1/audit/verify');
    expect(before.status).toBe(200);
    expect(before.body).toMatchObject({ valid: true });
    expect(before.body.anchorsChecked).toBeGreaterThanOrEqual(1);

    // Someone with write access to the database removes the two newest rows: what is left is a
    // perfectly linked chain, which only the anchor shows to be short.
    const deleted = await ds
      .createQueryBuilder()
      .delete()
      .from(AuditLogEntry)
      .where('tenantId = :tenantId AND sequence > :after', { tenantId, after: head.sequence - 2 })
      .execute();
    expect(deleted.affected).toBe(2);

    const after = await call('POST', '/v1/audit/verify');
    expect(after.status).toBe(200);
    expect(after.body).toMatchObject({ valid: false, firstBad: { tenantId, reason: 'truncated', sequence: head.sequence } });

    // The next anchoring run must not adopt the shortened chain as the new truth.
    const rerun = await app.get(AuditAnchorService).runOnce();
    expect(rerun.refused).toContain(tenantId);
    expect((await app.get(AuditAnchorStore).read(tenantId))?.sequence).toBe(head.sequence);
    expect((await call('POST', '/v1/audit/verify')).body).toMatchObject({ valid: false, firstBad: { reason: 'truncated' } });

    // Operators see it on /metrics: two verifies and one anchoring run found the broken chain.
    const metrics = await (await fetch(`${host.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/^credential_vault_audit_broken_chains_total 3$/m);
    expect(metrics).toMatch(/^credential_vault_audit_anchors_written_total [1-9]\d*$/m);
  });

  it('answers verify with 500 AUDIT_ANCHOR_DAMAGED, not a 503 to retry, when the tenant\'s anchor secret was deleted', async () => {
    const { app } = host;
    await app.get(AuditAnchorStore).write({ tenantId: 'damaged', sequence: 1, hash: 'a'.repeat(64), anchoredAt: new Date() });
    await app.get(KeyVaultProvider).deleteSecret(auditAnchorSecretName('damaged'));
    const refused = await call('POST', '/v1/audit/verify', undefined, damagedRoot.key);
    expect(refused.status).toBe(500);
    expect(refused.body).toMatchObject({ statusCode: 500, code: 5008, codeName: 'AUDIT_ANCHOR_DAMAGED' });
    expect(JSON.stringify(refused.body)).not.toContain(auditAnchorSecretName('damaged'));
  });
});
