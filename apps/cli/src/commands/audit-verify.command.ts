import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Command, CommandRunner, Option } from 'nest-commander';
import { AuditModule, AuditService } from '@app/audit';
import { AppConfigModule, AuditAnchorModule, loadAppConfigResolvingReferences, VaultModule } from '@app/api-host';
import { COMMAND_CONTEXT_OPTIONS } from '../cli-output';
import { commandDatabaseModule, refuseOlderSchema } from './command-database';

/**
 * `cli audit:verify [--tenant t]`: walks the audit hash chains in the host's database (same
 * environment variables as the host) and exits 1 naming the first bad row, 0 when all verify.
 * With an external vault (KEY_VAULT_URL) the chains are also checked against their Key Vault
 * anchors; the embedded vault belongs to the running host, so there `POST /v1/audit/verify` does that.
 */
@Command({ name: 'audit:verify', description: "Verify the audit log's hash chains (exit 1 and name the first bad row if broken)" })
export class AuditVerifyCommand extends CommandRunner {
  async run(_args: string[], flags: { tenant?: string }): Promise<void> {
    const config = await loadAppConfigResolvingReferences(process.env);
    await refuseOlderSchema(config);
    const anchors = config.keyVault.mode === 'external' ? [VaultModule, AuditAnchorModule] : [];
    if (!anchors.length) {
      // It does not start the embedded vault (so that it runs beside the host, which holds that vault), whether or not a host runs now.
      process.stderr.write(
        'Anchors not checked: audit:verify does not start the embedded local vault. Check them with POST /v1/audit/verify on the host, or run this with KEY_VAULT_URL (an external vault).\n',
      );
    }

    @Module({
      imports: [
        AppConfigModule.forRoot(config),
        commandDatabaseModule(),
        ...anchors,
        AuditModule.forRoot({ retention: { enabled: false } }),
      ],
    })
    class VerifyModule {}

    const ctx = await NestFactory.createApplicationContext(VerifyModule, COMMAND_CONTEXT_OPTIONS);
    try {
      const result = await ctx.get(AuditService).verify({ tenantId: flags.tenant });
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      if (!result.valid) process.exitCode = 1;
    } finally {
      await ctx.close();
    }
  }

  @Option({ flags: '--tenant <tenant>', description: 'verify only this tenant (default: every chain)' })
  parseTenant(v: string): string {
    return v;
  }
}
