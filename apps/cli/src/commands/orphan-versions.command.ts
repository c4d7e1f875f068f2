import { Command, CommandRunner, Option } from 'nest-commander';
import { CredentialOrphanVersions, type OrphanVersionsResult } from '@app/credentials';
import { withHostLibs } from './host-libs.context';

/**
 * `cli credentials:orphan-versions [--runs n]`: runs of the orphan-versions job now, with the host's grace period and
 * bound (CREDENTIALS_ORPHAN_VERSIONS_*), under the job's lock (`acquired: false` when a replica is running it); stops
 * early once a pass over the vault's secrets is complete. Prints each run's counts (never a value or a secret name).
 */
@Command({ name: 'credentials:orphan-versions', description: 'Disable the Key Vault versions no metadata references (orphans of crashed writes) older than the grace period, now' })
export class OrphanVersionsCommand extends CommandRunner {
  async run(_args: string[], flags: { runs?: number }): Promise<void> {
    const results = await withHostLibs(async (get) => {
      const job = get(CredentialOrphanVersions);
      const out: OrphanVersionsResult[] = [];
      for (let i = 0; i < (flags.runs ?? 1); i++) {
        const r = await job.runOnce();
        out.push(r);
        if (!r.acquired || r.passComplete) break;
      }
      return out;
    });
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    if (results.some((r) => r.failed > 0)) process.exitCode = 1;
  }

  @Option({ flags: '--runs <n>', description: 'at most this many runs (each bounded by CREDENTIALS_ORPHAN_VERSIONS_MAX_SECRETS); default 1' })
  parseRuns(v: string): number {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > 100_000) throw new Error('--runs must be an integer from 1 to 100000');
    return n;
  }
}
