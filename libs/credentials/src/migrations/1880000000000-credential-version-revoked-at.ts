import { MigrationInterface, QueryRunner, TableColumn } from 'typeorm';
import { postgresSchema } from '@app/common';

/**
 * `cv_credential_versions.revoked_at`: a revoke marks every version it withdrew, so a later rotation
 * (which makes the credential active again) cannot bring a leaked value back by version or rollback.
 * The versions of credentials revoked now are marked as of this migration.
 */
export class CredentialVersionRevokedAt1880000000000 implements MigrationInterface {
  name = 'CredentialVersionRevokedAt1880000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.addColumn('cv_credential_versions', new TableColumn({ name: 'revoked_at', type: 'bigint', isNullable: true }));
    const schema = postgresSchema(queryRunner) ?? '';
    await queryRunner.query(
      `UPDATE ${schema}"cv_credential_versions" SET "revoked_at" = ${Date.now()} WHERE "credential_id" IN (SELECT "id" FROM ${schema}"cv_credentials" WHERE "status" = 'revoked')`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropColumn('cv_credential_versions', 'revoked_at');
  }
}
