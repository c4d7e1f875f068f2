import { MigrationInterface, QueryRunner } from 'typeorm';
import { postgresSchema } from '@app/common';

interface HistoryRow {
  tenantId: string;
  credentialId: string;
  currentVersion: number | string;
  status: string;
  action: 'revoke' | 'unrevoke';
  version: number | string | null;
  at: number | string;
}

/**
 * Marks the versions a revoke withdrew before versions carried the mark (`cv_credential_versions.revoked_at`,
 * CredentialVersionRevokedAt1880000000000) when a rotation made the credential active again since. 1880 marked the
 * versions of the credentials revoked at the upgrade only, and all alike, so a value revoked, then rotated away under an
 * older version, stayed withdrawn in name only: `…/versions/{n}/value` served it (envelope store; the vault store
 * answered the vault's 403 DISABLED) and a rollback to it made it current again — or, revoked again since, an un-revoke
 * would lift it with the last revoke's versions.
 *
 * The revokes and un-revokes the Rotation lib recorded in `cv_rotation_history` are replayed per credential (not
 * deleted) with this version's rules (CredentialWriter, `revokeMark`, `lastRevoked`): a revoke marks every version up to
 * the one it names that is not marked yet, just after the previous mark at the latest; an un-revoke of a revoked
 * credential lifts the marks of the last revoke, and one recorded after a rotation made it active (older versions'
 * un-revoke raced by a rotation) lifts nothing. Only the versions of a revoke a rotation followed (it names a version
 * before the current one) are written, never the current version: those still unmarked; and, on a credential revoked
 * now, those marked as its last revoke, so that an un-revoke leaves them withdrawn. A database already under these
 * rules is left as it is. A revoke made without the Rotation lib (a status change to `revoked`,
 * `CredentialsService.revoke`) left no history row and is not seen. `down` leaves the marks.
 */
export class RevokedVersionsBeforeRevokedAt1950000000000 implements MigrationInterface {
  name = 'RevokedVersionsBeforeRevokedAt1950000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const schema = postgresSchema(queryRunner) ?? '';
    const versions = `${schema}"cv_credential_versions"`;
    // A revoke and an un-revoke of one millisecond: the revoke first (an un-revoke lifts a revoke made before it).
    const rows = (await queryRunner.query(
      `SELECT h."tenant_id" AS "tenantId", h."credential_id" AS "credentialId", c."current_version" AS "currentVersion", c."status" AS "status", ` +
        `h."action" AS "action", h."to_version" AS "version", h."created_at" AS "at" ` +
        `FROM ${schema}"cv_rotation_history" h JOIN ${schema}"cv_credentials" c ON c."id" = h."credential_id" AND c."tenant_id" = h."tenant_id" ` +
        `WHERE h."action" IN ('revoke', 'unrevoke') AND c."status" <> 'deleted' ` +
        `ORDER BY h."tenant_id", h."credential_id", h."created_at", CASE h."action" WHEN 'revoke' THEN 0 ELSE 1 END, h."id"`,
    )) as HistoryRow[];
    for (const events of groupByCredential(rows)) {
      const { tenantId, credentialId, status } = events[0];
      const current = Number(events[0].currentVersion);
      const byMark = new Map<number, number[]>();
      for (const [version, { mark, revokedVersion }] of replay(events)) {
        if (version < current && revokedVersion < current) byMark.set(mark, [...(byMark.get(mark) ?? []), version]);
      }
      const credential = `"tenant_id" = ${literal(tenantId)} AND "credential_id" = ${literal(credentialId)}`;
      for (const [mark, numbers] of byMark) {
        // Revoked now: also those marked as its last revoke (1880 marked all alike), which an un-revoke would lift.
        const lastRevoke = `"revoked_at" > ${mark} AND "revoked_at" = (SELECT MAX("revoked_at") FROM ${versions} WHERE ${credential})`;
        const writable = status === 'revoked' ? `("revoked_at" IS NULL OR ${lastRevoke})` : '"revoked_at" IS NULL';
        await queryRunner.query(`UPDATE ${versions} SET "revoked_at" = ${mark} WHERE ${credential} AND "version" IN (${numbers.join(', ')}) AND ${writable}`);
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
    const group = groups.get(key);
    if (group) group.push(row);
    else groups.set(key, [row]);
  }
  return [...groups.values()];
}

/**
 * Version → the mark of the revoke that withdrew it and the version that revoke named, after one credential's revokes
 * and un-revokes in order (a revoke names the version current when it ran; an un-revoke, the version it left current).
 */
function replay(events: HistoryRow[]): Map<number, { mark: number; revokedVersion: number }> {
  const marks = new Map<number, { mark: number; revokedVersion: number }>();
  let latest = -1;
  // The version the credential's standing revoke named; none once un-revoked (or never revoked).
  let revoked: number | null = null;
  for (const e of events) {
    if (e.version === null) continue; // every version's code names one
    const version = Number(e.version);
    if (e.action === 'revoke') {
      const mark = Math.max(Number(e.at), latest + 1);
      let marked = false;
      for (let v = 1; v <= version; v++) {
        if (marks.has(v)) continue;
        marks.set(v, { mark, revokedVersion: version });
        marked = true;
      }
      if (marked) latest = mark;
      revoked = version;
      continue;
    }
    // A rotation since the revoke (the un-revoke names a later version) made the credential active: nothing to lift.
    if (revoked !== version) continue;
    revoked = null;
    for (const [v, m] of marks) if (m.mark === latest) marks.delete(v);
    latest = Math.max(-1, ...[...marks.values()].map((m) => m.mark));
  }
  return marks;
}

const literal = (s: string) => `'${s.replace(/'/g, "''")}'`;
