import { Command, CommandRunner, Option } from 'nest-commander';
import { AuditResult, AuditService } from '@app/audit';
import type { AppConfig } from '@app/api-host';
import { CredentialsConfigurationError, DataKeyService, EnvelopeValueStore } from '@app/credentials';
import { operatorContext, withHostLibs } from './host-libs.context';

/**
 * `cli data-key:rotate --tenant t`: a new version of the tenant's envelope data key (a Key Vault
 * secret). New envelope values are sealed with it — at once here, on the other replicas once they
 * re-check the current key (`envelope.currentKeyRefreshMs`); older values stay readable under the
 * version they name and are re-sealed as they are read. Audited. Prints the key's name and version,
 * never the key. A tenant with no data key (a mistyped id; its first key comes with its first envelope value) is
 * refused, nothing written.
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

/**
 * `cli data-key:reencrypt --tenant t`: re-encrypts now every envelope value of the tenant still sealed with
 * an older version of its data key (reads do it lazily otherwise), so that after a `data-key:rotate` the
 * older versions can be disabled in the vault. Idempotent and safe beside a running host (compare-and-set
 * per row). Audited (`data_key_reencrypt`, counts only). Prints counts and the credentials that failed —
 * never a value; exit 1 when any did. A tenant with no data key (a mistyped id) is refused, nothing written.
 */
@Command({ name: 'data-key:reencrypt', description: "Re-encrypt a tenant's envelope values under its current data key" })
export class DataKeyReencryptCommand extends CommandRunner {
  async run(_args: string[], flags: { tenant?: string }): Promise<void> {
    if (!flags.tenant) throw new Error('--tenant is required');
    const ctx = operatorContext(flags.tenant);
    const result = await withHostLibs(async (get) => {
      // A mistyped tenant has no data key (nor an envelope value): refused, not audited as a run over nothing.
      await get(DataKeyService).requireKey(ctx.tenantId);
      const r = await get(EnvelopeValueStore).reencryptAll(ctx.tenantId);
      await get(AuditService).record({
        action: 'data_key_reencrypt',
        context: ctx,
        resource: get(DataKeyService).nameFor(ctx.tenantId),
        result: r.failed.length ? AuditResult.FAILURE : AuditResult.SUCCESS,
        details: { reencrypted: r.reencrypted, alreadyCurrent: r.alreadyCurrent, failed: r.failed.length },
      });
      return { tenantId: ctx.tenantId, ...r };
    });
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    if (result.failed.length) process.exitCode = 1;
  }

  @Option({ flags: '--tenant <tenant>', description: 'the tenant', required: true })
  parseTenant(v: string): string {
    return v;
  }
}

/** The lib refuses too, naming its option (`envelope.keyEncryptionKey`); an operator sets the host's variable. */
function requireKeyEncryptionKey(config: AppConfig): void {
  if (!config.credentials.envelope.keyEncryptionKey) {
    throw new CredentialsConfigurationError('no key-encryption key is configured (ENVELOPE_KEY_ENCRYPTION_KEY is not set): data keys are vault secrets, nothing to re-wrap');
  }
}

/**
 * `cli data-key:rewrap [--tenant t] [--dry-run]`: with `ENVELOPE_KEY_ENCRYPTION_KEY`, re-wraps now every data key
 * not yet under the key-encryption key's latest version (all tenants, or one) instead of waiting for each
 * to be unwrapped; when it reports `remaining: 0` the key's older versions can be disabled. `--dry-run` only
 * counts. Safe beside running replicas. Audited per tenant re-wrapped (`data_key_rewrap`, counts and the
 * version). Prints counts and the data keys that failed (tenant, version, error class) — never key material;
 * exit 1 when any failed or remain.
 */
@Command({ name: 'data-key:rewrap', description: 'Re-wrap envelope data keys under the latest version of the key-encryption key' })
export class DataKeyRewrapCommand extends CommandRunner {
  async run(_args: string[], flags: { tenant?: string; dryRun?: boolean }): Promise<void> {
    const result = await withHostLibs(async (get) => {
      const r = await get(DataKeyService).rewrapAll({ tenantId: flags.tenant, dryRun: flags.dryRun });
      const failedByTenant = new Map<string, number>();
      for (const f of r.failed) failedByTenant.set(f.tenantId, (failedByTenant.get(f.tenantId) ?? 0) + 1);
      for (const tenantId of new Set([...Object.keys(r.rewrappedByTenant), ...failedByTenant.keys()])) {
        await get(AuditService).record({
          action: 'data_key_rewrap',
          context: operatorContext(tenantId),
          resource: r.keyEncryptionKey,
          result: failedByTenant.has(tenantId) ? AuditResult.FAILURE : AuditResult.SUCCESS,
          details: { kekVersion: r.kekVersion, rewrapped: r.rewrappedByTenant[tenantId] ?? 0, failed: failedByTenant.get(tenantId) ?? 0 },
        });
      }
      return { dryRun: flags.dryRun === true, ...r };
    }, { requires: requireKeyEncryptionKey });
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    if (result.failed.length || (!result.dryRun && result.remaining > 0)) process.exitCode = 1;
  }

  @Option({ flags: '--tenant <tenant>', description: 'only this tenant' })
  parseTenant(v: string): string {
    return v;
  }

  @Option({ flags: '--dry-run', description: 'count the data keys a run would re-wrap, change nothing' })
  parseDryRun(): boolean {
    return true;
  }
}
