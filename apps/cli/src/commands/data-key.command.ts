import { Command, CommandRunner, Option } from 'nest-commander';
import { AuditResult, AuditService } from '@app/audit';
import { DataKeyService } from '@app/credentials';
import { operatorContext, withHostLibs } from './host-libs.context';

/**
 * `cli data-key:rotate --tenant t`: a new version of the tenant's envelope data key (a Key Vault
 * secret). New envelope values are sealed with it — at once here, on the other replicas once they
 * re-check the current key (`envelope.currentKeyRefreshMs`); older values stay readable under the
 * version they name and are re-sealed as they are read. Audited. Prints the key's name and version,
 * never the key.
 */
@Command({ name: 'data-key:rotate', description: "Rotate a tenant's envelope data key (new Key Vault secret version)" })
export class DataKeyRotateCommand extends CommandRunner {
  async run(_args: string[], flags: { tenant?: string }): Promise<void> {
    if (!flags.tenant) throw new Error('--tenant is required');
    const ctx = operatorContext(flags.tenant);
    const result = await withHostLibs(async (get) => {
      const key = await get(DataKeyService).rotate(ctx.tenantId);
      await get(AuditService).record({ action: 'data_key_rotate', context: ctx, resource: key.name, result: AuditResult.SUCCESS, details: { keyVersion: key.version } });
      return { tenantId: ctx.tenantId, secretName: key.name, version: key.version };
    });
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  }

  @Option({ flags: '--tenant <tenant>', description: 'the tenant', required: true })
  parseTenant(v: string): string {
    return v;
  }
}
