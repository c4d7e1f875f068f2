import { MigrationInterface, QueryRunner } from 'typeorm';
import { postgresSchema } from '@app/common';

const INDEX = '"UQ_cv_rotation_history_rotation"';

/**
 * One `cv_rotation_history` row per rotation or rollback: a unique (credential, action, to-version) over those two
 * actions, each of which makes a new version, so the history insert can skip a second recording of one rotation (two
 * replicas answering the same webhook promotion, a retry). Revokes and un-revokes stay out of it: a revoke, un-revoke
 * and revoke again all name the same version.
 *
 * The duplicates such recordings left before are deleted first, keeping the earliest row of each rotation (the first
 * recording; by id on a tie); `down` drops the index and does not bring them back.
 */
export class RotationHistoryOneRowPerRotation1940000000000 implements MigrationInterface {
  name = 'RotationHistoryOneRowPerRotation1940000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const schema = postgresSchema(queryRunner) ?? '';
    const table = `${schema}"cv_rotation_history"`;
    const outer = '"cv_rotation_history"';
    // Matched on tenant and credential too, the leading columns of IDX_cv_rotation_history_credential: one lookup per row.
    await queryRunner.query(
      `DELETE FROM ${table} WHERE "action" IN ('rotate', 'rollback') AND EXISTS (` +
        `SELECT 1 FROM ${table} AS "earlier" WHERE "earlier"."tenant_id" = ${outer}."tenant_id" AND "earlier"."credential_id" = ${outer}."credential_id" ` +
        `AND "earlier"."action" = ${outer}."action" AND "earlier"."to_version" = ${outer}."to_version" ` +
        `AND ("earlier"."created_at" < ${outer}."created_at" OR ("earlier"."created_at" = ${outer}."created_at" AND "earlier"."id" < ${outer}."id")))`,
    );
    await queryRunner.query(`CREATE UNIQUE INDEX ${INDEX} ON ${table} ("credential_id", "action", "to_version") WHERE "action" IN ('rotate', 'rollback')`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX ${postgresSchema(queryRunner) ?? ''}${INDEX}`);
  }
}
