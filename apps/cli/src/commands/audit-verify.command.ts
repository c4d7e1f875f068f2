import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Command, CommandRunner, Option } from 'nest-commander';
import { AuditModule, AuditService } from '@app/audit';
import { AppConfigModule, AuditAnchorModule, loadAppConfigResolvingReferences, VaultModule } from '@app/api-host';
import { COMMAND_CONTEXT_OPTIONS } from '../cli-output';
import { commandDatabaseModule, refuseOlderSchema } from './command-database';

/** `audit:verify --tenant t` for a tenant the audit log holds nothing of: there was no chain to verify. */
export class AuditTenantWithoutRowsError extends Error {
  override readonly name = 'AuditTenantWithoutRowsError';
}

/**
 * `cli audit:verify [--tenant t]`: walks the audit hash chains in the host's database (same
 * environment variables as the host) and exits 1 naming the first bad row, 0 when all verify.
 * With an external vault (KEY_VAULT_URL) the chains are also checked against their Key Vault
 * anchors; the embedded vault belongs to the running host, so there `POST /v1/audit/verify` does that.
 * `--tenant` naming a tenant with no audit row and no anchor (most often a mistyped id) is refused: exit 1, one line,
 * nothing on stdout — not `valid: true` over nothing. The audit log knows no tenant without a row, so a tenant that
 * has done nothing audited yet is refused the same way (its line says so).
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
      // A tenant with an anchor but no row is `truncated` (invalid); valid over no row means neither exists.
      if (flags.tenant !== undefined && result.valid && result.checked === 0) {
        throw new AuditTenantWithoutRowsError(
          `tenant ${flags.tenant} has no audit rows and no anchor: nothing was verified (check --tenant; a tenant that has done nothing audited yet has none)`,
        );
      }
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
