import { MigrationInterface, QueryRunner, TableColumn } from 'typeorm';

/**
 * `cv_webhook_secret_versions.staged_over_row_version`: the webhook secret's row version a pending rotation was
 * prepared over, which a revoke's late event compares with its own (see WebhookSecretRotator.discardIfEnded) instead of
 * two replicas' clocks. Rows written before it keep null: the event's time decides for them, as it did.
 */
export class WebhookStagedOverRowVersion1960000000000 implements MigrationInterface {
  name = 'WebhookStagedOverRowVersion1960000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.addColumn('cv_webhook_secret_versions', new TableColumn({ name: 'staged_over_row_version', type: 'integer', isNullable: true }));
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropColumn('cv_webhook_secret_versions', 'staged_over_row_version');
  }
}
