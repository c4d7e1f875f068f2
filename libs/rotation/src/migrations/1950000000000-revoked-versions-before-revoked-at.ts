import { MigrationInterface, QueryRunner } from 'typeorm';
import { postgresSchema } from '@app/common';

interface HistoryRow {
  tenantId: string;
  credentialId: string;
  currentVersion: number | string;
  action: 'revoke' | 'unrevoke';
  version: number | string | null;
  at: number | string;
}

/**
 * Marks the versions a revoke withdrew before versions carried the mark (`cv_credential_versions.revoked_at`,
 * CredentialVersionRevokedAt1880000000000) when a rotation made the credential active again since. 1880 marked the
 * versions of the credentials revoked at the upgrade only, so a value revoked, then rotated away under an older version,
 * stayed withdrawn in name only: `…/versions/{n}/value` served it (envelope store; the vault store answered the vault's
 * 403 DISABLED) and a rollback to it made it current again.
 *
 * The revokes and un-revokes the Rotation lib recorded in `cv_rotation_history` are replayed per credential (not revoked,
 * not deleted) with this version's rules: a revoke marks every version up to the one it names that is not marked yet,
 * an un-revoke lifts the marks of the last revoke. Only versions still unmarked are written, with the revoke's time, and
 * never the current version (the credential is active: its value is served); a database already under these rules is
 * left as it is. A revoke made without the Rotation lib (a status change to `revoked`, `CredentialsService.revoke`)
 * left no history row and is not seen. `down` leaves the marks.
 */
export class RevokedVersionsBeforeRevokedAt1950000000000 implements MigrationInterface {
  name = 'RevokedVersionsBeforeRevokedAt1950000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const schema = postgresSchema(queryRunner) ?? '';
    const rows = (await queryRunner.query(
      `SELECT h."tenant_id" AS "tenantId", h."credential_id" AS "credentialId", c."current_version" AS "currentVersion", ` +
        `h."action" AS "action", h."to_version" AS "version", h."created_at" AS "at" ` +
        `FROM ${schema}"cv_rotation_history" h JOIN ${schema}"cv_credentials" c ON c."id" = h."credential_id" AND c."tenant_id" = h."tenant_id" ` +
        `WHERE h."action" IN ('revoke', 'unrevoke') AND c."status" NOT IN ('revoked', 'deleted') ` +
        `ORDER BY h."tenant_id", h."credential_id", h."created_at", h."id"`,
    )) as HistoryRow[];
    for (const events of groupByCredential(rows)) {
      const { tenantId, credentialId } = events[0];
      const current = Number(events[0].currentVersion);
      const byTime = new Map<number, number[]>();
      for (const [version, at] of replay(events)) if (version < current) byTime.set(at, [...(byTime.get(at) ?? []), version]);
      for (const [at, versions] of byTime) {
        await queryRunner.query(
          `UPDATE ${schema}"cv_credential_versions" SET "revoked_at" = ${at} WHERE "tenant_id" = ${literal(tenantId)} ` +
            `AND "credential_id" = ${literal(credentialId)} AND "version" IN (${versions.join(', ')}) AND "revoked_at" IS NULL`,
        );
      }
    }
  }

  async down(): Promise<void> {
    // The marks stay: a version withdrawn by a revoke is not served again, under either rule.
  }
}

function groupByCredential(rows: HistoryRow[]): HistoryRow[][] {
  const groups = new Map<string, HistoryRow[]>();
  for (const row of rows) {
    const key = `${row.tenantId}\u0000${row.credentialId}`;
    groups.set(key, [...(groups.get(key) ?? []), row]);
  }
  return [...groups.values()];
}

/** Version → the time of the revoke that withdrew it, after one credential's revokes and un-revokes in order. */
function replay(events: HistoryRow[]): Map<number, number> {
  const marks = new Map<number, number>();
  for (const e of events) {
    if (e.action === 'revoke') {
      if (e.version === null) continue;
      for (let v = 1; v <= Number(e.version); v++) if (!marks.has(v)) marks.set(v, Number(e.at));
      continue;
    }
    const last = Math.max(...marks.values());
    for (const [v, at] of marks) if (at === last) marks.delete(v);
  }
  return marks;
}

const literal = (s: string) => `'${s.replace(/'/g, "''")}'`;
