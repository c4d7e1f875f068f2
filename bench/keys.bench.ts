/**
 * Keys: sign (RS256, RSA-2048) and encrypt (RSA-OAEP-256) throughput through the gateway
 * (`KeysService`: tenant scope, key checks, audit, metrics, the shared resilience) vs the Azure SDK's
 * CryptographyClient directly, in one run against one local vault in a process of its own; and
 * verify locally from the cached public key vs in the vault. Prints one JSON line per figure and
 * writes "## Keys" in docs/BENCHMARKS.md.
 *
 *   npm run bench -- keys [--ops 2000] [--concurrency 16] [--rounds 3] [--no-write]
 */
import 'reflect-metadata';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Logger } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { AuditService } from '@app/audit';
import type { OperationContext } from '@app/common';
import { emulatorCryptographyClient, type KeyVaultEmulator } from '@app/keyvault-emulator';
import { KeysModule, KeysService } from '@app/keys';
import { credentialsStackImports } from '@app/testing';
import { emitFigure, figure, type Figure } from './support/figures';
import { machineLine, medianRun, runLoad, today, writeBenchmarkSection, type LoadResult } from './support/measure';
import { VaultProcess } from './support/vault-process';

const { values: args } = parseArgs({
  options: {
    ops: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '3' },
    'no-write': { type: 'boolean', default: false },
  },
});
const OPS = Number(args.ops);
const CONCURRENCY = Number(args.concurrency);
const ROUNDS = Number(args.rounds);

async function best(label: string, fn: (i: number) => Promise<unknown>): Promise<LoadResult> {
  await runLoad(Math.min(200, OPS), CONCURRENCY, fn); // warm-up: TLS sessions, key caches
  const runs: LoadResult[] = [];
  for (let r = 0; r < ROUNDS; r++) runs.push(await runLoad(OPS, CONCURRENCY, fn));
  const result = medianRun(runs);
  process.stderr.write(`${label}: ${JSON.stringify(result)}\n`);
  if (result.errors) throw new Error(`${label}: ${result.errors} of ${OPS} calls failed`);
  return result;
}

async function main(): Promise<void> {
  Logger.overrideLogger(['error']);
  const dir = mkdtempSync(join(tmpdir(), 'cv-bench-keys-'));
  const vault = await VaultProcess.start({ dataDir: join(dir, 'vault'), throttle: { limit: 1_000_000_000, windowMs: 10_000 } });
  const app = await Test.createTestingModule({
    imports: [
      ...credentialsStackImports({ database: { type: 'better-sqlite3', database: join(dir, 'bench.sqlite'), enableWAL: true }, vault: vault as unknown as KeyVaultEmulator }),
      KeysModule.forRoot({}),
    ],
  }).compile();
  await app.init();
  try {
    const keys = app.get(KeysService);
    const ctx: OperationContext = { tenantId: 'bench', actor: { id: 'bench' } };
    const key = await keys.createKey(ctx, { name: 'bench-rsa', type: 'RSA', size: 2048 });
    const sdk = emulatorCryptographyClient(vault, key.publicKey.kid, { maxRetries: 0 });
    const digest = new Uint8Array(createHash('sha256').update('bench payload').digest());
    const plaintext = new Uint8Array(32).fill(7);
    const { signature } = await keys.sign(ctx, { name: key.name, algorithm: 'RS256', digest });

    const sdkSign = await best('sign via SDK', () => sdk.sign('RS256', digest));
    const gwSign = await best('sign via gateway', () => keys.sign(ctx, { name: key.name, algorithm: 'RS256', digest }));
    const sdkEncrypt = await best('encrypt via SDK', () => sdk.encrypt({ algorithm: 'RSA-OAEP-256', plaintext }));
    const gwEncrypt = await best('encrypt via gateway', () => keys.encrypt(ctx, { name: key.name, algorithm: 'RSA-OAEP-256', plaintext }));
    const remoteVerify = await best('verify in the vault', () => keys.verify(ctx, { name: key.name, algorithm: 'RS256', digest, signature, remote: true }));
    const localVerify = await best('verify locally', () => keys.verify(ctx, { name: key.name, algorithm: 'RS256', digest, signature }));
    await app.get(AuditService).flush();

    const figures: Figure[] = [
      figure('keys', 'sign RS256 ops/s via gateway (baseline: SDK directly)', gwSign.opsPerSec, sdkSign.opsPerSec, null),
      figure('keys', 'encrypt RSA-OAEP-256 ops/s via gateway (baseline: SDK directly)', gwEncrypt.opsPerSec, sdkEncrypt.opsPerSec, null),
      figure('keys', 'verify RS256 ops/s locally (baseline: in the vault)', localVerify.opsPerSec, remoteVerify.opsPerSec, null),
    ].map(emitFigure);

    if (!args['no-write']) {
      const row = (name: string, r: LoadResult) => `| ${name} | ${r.opsPerSec} | ${r.p50Ms} | ${r.p99Ms} |`;
      const body = [
        `Measured ${today()} on ${machineLine()}: ${OPS} calls × ${ROUNDS} rounds (median round), concurrency ${CONCURRENCY},`,
        'RSA-2048 key in the local vault running in its own process (no throttling), the gateway audited on SQLite.',
        '',
        '| operation | ops/s | p50 ms | p99 ms |',
        '|---|---|---|---|',
        row('sign RS256, SDK CryptographyClient directly', sdkSign),
        row('sign RS256, KeysService (gateway)', gwSign),
        row('encrypt RSA-OAEP-256, SDK directly', sdkEncrypt),
        row('encrypt RSA-OAEP-256, KeysService (gateway)', gwEncrypt),
        row('verify RS256 in the vault (`remote: true`)', remoteVerify),
        row('verify RS256 locally from the cached public key (default)', localVerify),
        '',
        `Gateway / SDK: sign ${figures[0].ratio}, encrypt ${figures[1].ratio}; local / vault verify: ${figures[2].ratio}.`,
      ].join('\n');
      process.stderr.write(`wrote ${writeBenchmarkSection('Keys', body)}\n`);
    }
  } finally {
    await app.close();
    await vault.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
