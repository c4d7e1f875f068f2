/**
 * Throughput and latency of the local Key Vault emulator through the official SecretClient over
 * loopback HTTPS (throttling off, persistence on). Prints one JSON line per figure and writes the
 * "## Local Key Vault (emulator)" section of docs/BENCHMARKS.md.
 *
 *   npm run bench:emulator -- [--ops 2000] [--concurrency 16] [--no-write]
 */
import { SecretClient } from '@azure/keyvault-secrets';
import { emulatorCredential, KeyVaultEmulator } from '@app/keyvault-emulator';
import { parseArgs } from 'node:util';
import { machineLine, runLoad, today, writeBenchmarkSection } from './support/measure';

interface Figure {
  bench: 'emulator';
  op: string;
  ops: number;
  concurrency: number;
  errors: number;
  throughputOpsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

async function run(op: string, ops: number, concurrency: number, fn: (i: number) => Promise<unknown>): Promise<Figure> {
  const r = await runLoad(ops, concurrency, fn, { percentiles: 2 });
  return { bench: 'emulator', op, ops, concurrency, errors: r.errors, throughputOpsPerSec: r.opsPerSec, p50Ms: r.p50Ms, p99Ms: r.p99Ms, maxMs: r.maxMs };
}

function writeSection(figures: Figure[], opts: { ops: number; concurrency: number }): string {
  const rows = figures.map((f) => `| ${f.op} | ${f.ops} | ${f.concurrency} | ${f.throughputOpsPerSec} | ${f.p50Ms} | ${f.p99Ms} | ${f.maxMs} | ${f.errors} |`);
  return writeBenchmarkSection(
    'Local Key Vault (emulator)',
    [
      `Measured ${today()} with \`npm run bench:emulator\` (bench/emulator.bench.ts): the official \`@azure/keyvault-secrets\``,
      `SecretClient against \`KeyVaultEmulator\` over loopback HTTPS (TLS, keep-alive), ${opts.ops} operations per figure`,
      `at concurrency ${opts.concurrency}, throttling disabled, persistence on (encrypted; a write answered once its journal line is fsynced),`,
      '64-byte values over 200 secret names, after a 200-operation warm-up. Client and server share one Node process.',
      '',
      `Machine: ${machineLine()}.`,
      'The machine was shared with other workloads while measuring, so treat the figures as an order of magnitude.',
      '',
      '| operation | ops | concurrency | ops/s | p50 ms | p99 ms | max ms | errors |',
      '|---|---|---|---|---|---|---|---|',
      ...rows,
      '',
      'Azure Key Vault itself allows 300 Set Secret and 4,000 other transactions per 10 s per vault; the emulator enforces that',
      'by default (`throttle`), so in normal use the throttle, not the emulator, is the limit.',
    ].join('\n'),
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { ops: { type: 'string' }, concurrency: { type: 'string' }, 'no-write': { type: 'boolean' } },
  });
  const ops = Number(values.ops ?? 2000);
  const concurrency = Number(values.concurrency ?? 16);
  const emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
  try {
    const client = new SecretClient(emu.vaultUrl, emulatorCredential(), {
      disableChallengeResourceVerification: true,
      tlsOptions: { ca: emu.caCertPem },
      retryOptions: { maxRetries: 0 },
    });
    const value = 'v'.repeat(64);
    const name = (i: number) => `bench-secret-${i % 200}`;
    await run('warmup', 200, concurrency, (i) => client.setSecret(name(i), value));
    const figures = [
      await run('setSecret', ops, concurrency, (i) => client.setSecret(name(i), value)),
      await run('getSecret', ops, concurrency, (i) => client.getSecret(name(i))),
    ];
    for (const f of figures) console.log(JSON.stringify(f));
    if (!values['no-write']) console.error(`wrote ${writeSection(figures, { ops, concurrency })}`);
  } finally {
    await emu.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
