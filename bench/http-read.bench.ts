/**
 * HTTP read path: `GET /v1/credentials/:id/value` through the reference host (auth, rate limiting,
 * tenant check, cache, one audit row per request) vs the same host with a no-op audit (the audit
 * overhead over HTTP) vs a minimal Nest/Fastify route that calls `SecretClient.getSecret` per request
 * — all against the same local vault, in one run. The load comes from a separate process, so the
 * client's CPU is not the servers'. Rounds interleave the targets; the median round is reported.
 * Prints one JSON line per figure and writes "## HTTP read path" in docs/BENCHMARKS.md.
 *
 *   npm run bench:http -- [--ops 6000] [--concurrency 32] [--rounds 3] [--database sqlite|postgres] [--no-write]
 *
 * `--database postgres` gives each host a fresh schema in $BENCH_POSTGRES_URL (default
 * postgres://postgres@127.0.0.1:5432/test), dropped afterwards.
 */
import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SecretClient } from '@azure/keyvault-secrets';
import { Controller, Get, Inject, Module, Param } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { AuditService } from '@app/audit';
import { ReadAuditCoalescer } from '@app/credentials';
import { emulatorCredential, KeyVaultEmulator } from '@app/keyvault-emulator';
import { AppModule } from '../apps/api/src/app.module';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { configureApp, createApp, HOST_APP_OPTIONS, hostAdapter } from '../apps/api/src/bootstrap';
import { AppConfig, loadAppConfig } from '../apps/api/src/config/app.config';
import { httpLoadInChild, warmupRequests } from './support/http-load';
import { LoadResult, machineLine, median, medianRun, percent, today, writeBenchmarkSection } from './support/measure';
import { BENCH_POSTGRES_URL, dropSchema, freshSchema } from './support/postgres';
import { noopAudit, noopReadAudit } from './support/noop-audit';

const SECRET_CLIENT = 'bench:secret-client';

@Controller('baseline')
class BaselineController {
  constructor(@Inject(SECRET_CLIENT) private readonly client: SecretClient) {}

  @Get(':name')
  async get(@Param('name') name: string) {
    const s = await this.client.getSecret(name);
    return { value: s.value };
  }
}

/** The reference host with a no-op audit in place of the real one: same app, same configuration. */
async function hostWithoutAudit(config: AppConfig): Promise<NestFastifyApplication> {
  const moduleRef = await Test.createTestingModule({ imports: [AppModule.forRoot(config)] })
    .overrideProvider(AuditService)
    .useValue(noopAudit)
    .overrideProvider(ReadAuditCoalescer)
    .useValue(noopReadAudit)
    .compile();
  return configureApp(moduleRef.createNestApplication<NestFastifyApplication>(hostAdapter(), HOST_APP_OPTIONS), config);
}

type Target = 'host' | 'host, no-op audit' | 'baseline';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      ops: { type: 'string', default: '6000' },
      concurrency: { type: 'string', default: '32' },
      rounds: { type: 'string', default: '3' },
      database: { type: 'string', default: 'sqlite' },
      'no-write': { type: 'boolean' },
    },
  });
  const ops = Number(values.ops);
  const concurrency = Number(values.concurrency);
  const rounds = Number(values.rounds);
  const postgres = values.database === 'postgres';
  if (!postgres && values.database !== 'sqlite') throw new Error('--database must be sqlite or postgres');
  const schemas: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'cv-bench-http-'));
  // Throttling off: we measure our overhead and the SDK's, not Azure's 400/s budget.
  const vault = await KeyVaultEmulator.start({ dataDir: join(dir, 'vault'), throttle: false, quiet: true });
  const key = generateApiKey('bench', 'bench', ['admin']);
  /** Host configuration on a fresh database: a SQLite file, or a new PostgreSQL schema. */
  const config = async (db: string) => {
    let database: Record<string, string> = { DATABASE_PATH: join(dir, `${db}.sqlite`) };
    if (postgres) {
      const schema = await freshSchema(`bench_${db.replace(/\W/g, '_')}_${process.pid}`);
      schemas.push(schema);
      database = { DATABASE_TYPE: 'postgres', DATABASE_URL: BENCH_POSTGRES_URL, DATABASE_SCHEMA: schema };
    }
    return loadAppConfig({
      NODE_ENV: 'test',
      PORT: '0',
      LOG_LEVEL: 'warn',
      ...database,
      KEY_VAULT_URL: vault.vaultUrl,
      KEY_VAULT_CREDENTIAL: 'static',
      KEY_VAULT_CA_CERT_PATH: vault.caCertPath,
      KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: 'true',
      AUTH_API_KEYS: JSON.stringify([key.entry]),
      RATE_LIMIT_PER_MINUTE: '1000000',
    });
  };
  const client = new SecretClient(vault.vaultUrl, emulatorCredential(), {
    disableChallengeResourceVerification: true,
    tlsOptions: { ca: vault.caCertPem },
    retryOptions: { maxRetries: 0 },
  } as ConstructorParameters<typeof SecretClient>[2]);

  @Module({ controllers: [BaselineController], providers: [{ provide: SECRET_CLIENT, useValue: client }] })
  class BaselineModule {}
  const baseline = await NestFactory.create<NestFastifyApplication>(BaselineModule, new FastifyAdapter({ logger: false }), { logger: false });
  await baseline.listen(0, '127.0.0.1');

  try {
    const urlOf = async (app: NestFastifyApplication) => (await app.getUrl()).replace('[::1]', '127.0.0.1');
    const value = `bench-${'v'.repeat(48)}`;
    await client.setSecret('bench-direct', value);
    /** A fresh host (own database) with one stored credential: its URL and how to stop it. */
    const startHost = async (withAudit: boolean, db: string) => {
      const app = withAudit ? await createApp(await config(db)) : await hostWithoutAudit(await config(db));
      const base = await urlOf(app);
      const res = await fetch(`${base}/v1/credentials`, {
        method: 'POST',
        headers: { 'x-api-key': key.key, 'content-type': 'application/json' },
        body: JSON.stringify({ integrationId: 'bench', connectionId: 'c1', type: 'api_key', value }),
      });
      const { id } = (await res.json()) as { id: string };
      return {
        url: `${base}/v1/credentials/${id}/value`,
        headers: { 'x-api-key': key.key },
        ops,
        // The measured work includes writing the run's last audit rows, not the app's shutdown.
        settle: () => app.get(AuditService).flush(),
        stop: () => app.close(),
      };
    };
    const baseUrl = await urlOf(baseline);
    // One host at a time (started per round, closed after its load): no idle host, no shared registry.
    type Running = { url: string; headers?: Record<string, string>; ops: number; settle?: () => Promise<void>; stop?: () => Promise<void> };
    const targets: Record<Target, (round: number) => Promise<Running>> = {
      host: (r) => startHost(true, `host_${r}`),
      'host, no-op audit': (r) => startHost(false, `host_no_audit_${r}`),
      baseline: async () => ({ url: `${baseUrl}/baseline/bench-direct`, ops: Math.max(500, Math.floor(ops / 2)) }),
    };

    const results = new Map<Target, LoadResult[]>();
    const cpuPerRequest = new Map<Target, number[]>();
    let hostVaultCalls = 0;
    for (let r = 0; r < rounds; r++) {
      for (const [name, start] of Object.entries(targets) as Array<[Target, (typeof targets)[Target]]>) {
        const t = await start(r);
        const before = vault.stats().byOperation.getSecret ?? 0;
        const cpu0 = process.cpuUsage();
        let res: LoadResult;
        let cpu: NodeJS.CpuUsage;
        try {
          res = await httpLoadInChild({ url: t.url, headers: t.headers, ops: t.ops, concurrency });
          await t.settle?.();
          // This process serves (the client is another process): its CPU per request, warm-up included.
          cpu = process.cpuUsage(cpu0);
        } finally {
          await t.stop?.();
        }
        cpuPerRequest.set(name, [...(cpuPerRequest.get(name) ?? []), (cpu.user + cpu.system) / (t.ops + warmupRequests(t))]);
        if (name === 'host') hostVaultCalls += (vault.stats().byOperation.getSecret ?? 0) - before;
        results.set(name, [...(results.get(name) ?? []), res]);
        process.stderr.write(`round ${r + 1}/${rounds} ${name}: ${res.opsPerSec} req/s, p99 ${res.p99Ms} ms\n`);
      }
    }
    const mid = (name: Target) => medianRun(results.get(name)!);
    const paired = (a: Target, b: Target) => results.get(a)!.map((x, i) => x.opsPerSec / results.get(b)![i].opsPerSec);
    const auditOverheadPct = percent(1 - median(paired('host', 'host, no-op audit')));
    const cpuUs = (name: Target) => Math.round(median(cpuPerRequest.get(name)!));
    const auditCpuPct = percent(cpuUs('host') / cpuUs('host, no-op audit') - 1);
    const ratio = Math.round(median(paired('host', 'baseline')) * 10) / 10;
    const totalErrors = [...results.values()].flat().reduce((n, x) => n + x.errors, 0);
    for (const name of Object.keys(targets) as Target[]) {
      process.stdout.write(`${JSON.stringify({ bench: 'http-read', target: name, rounds, ...mid(name), serverCpuUsPerRequest: cpuUs(name) })}\n`);
    }
    process.stdout.write(`${JSON.stringify({ bench: 'http-read', auditOverheadPct, auditCpuPct, throughputRatio: ratio, hostVaultCalls, totalErrors })}\n`);
    if (!values['no-write']) {
      const row = (name: string, target: Target) => {
        const r = mid(target);
        return `| ${name} | ${r.ops} | ${r.concurrency} | ${r.opsPerSec} | ${r.p50Ms} | ${r.p99Ms} | ${cpuUs(target)} | ${r.errors} |`;
      };
      writeBenchmarkSection(
        postgres ? 'HTTP read path on PostgreSQL' : 'HTTP read path',
        `Measured ${today()} with \`npm run bench:http${postgres ? ' -- --database postgres' : ''}\` (bench/http-read.bench.ts); the host's metadata
and audit log on ${postgres ? 'PostgreSQL (local server, same machine)' : 'SQLite (the embedded default)'}. All servers are Nest 12 on Fastify in one
process, against the same local vault over HTTPS with throttling off; the load comes from a separate Node process
(fetch, keep-alive), so the client's CPU is not taken from the servers. The host route does API-key authentication,
rate limiting, request logging, the tenant check, the in-process cache and one buffered, hash-chained audit row per
request (each request has its own correlation id, so nothing is folded). "No-op audit" is the same host with the
audit log replaced by a stub that writes nothing. The baseline route only calls the SDK. ${rounds} rounds interleave
the targets; each row is the median round.

Machine: ${machineLine()}.

| route | requests | concurrency | req/s | p50 ms | p99 ms | server CPU µs/request | errors |
|---|---|---|---|---|---|---|---|
${row('host `GET /v1/credentials/:id/value` (warm)', 'host')}
${row('same host, no-op audit', 'host, no-op audit')}
${row('baseline: `SecretClient.getSecret` per request', 'baseline')}

- Audit overhead on the HTTP warm read path (one audit row per request): **${auditOverheadPct}%** of throughput
  (median of the per-round ratios), **${auditCpuPct}%** more server CPU per request. Unlike the in-process figure in
  "Audit overhead", nothing folds here: every request is its own audited access. "Server CPU" is the serving
  process's user+system time over all requests of a run (warm-up included; for the baseline it includes the local
  vault, which runs in that process)${postgres ? '; PostgreSQL\'s own CPU is not in it, but it shares the machine\'s cores' : ''}.
- Host throughput is **${ratio}×** the baseline's. Each host round starts a fresh host (cold cache, warmed by the
  load generator's 500 warm-up requests); the host's ${rounds} rounds made ${hostVaultCalls} vault calls in all, one per cold start.`,
      );
    }
  } finally {
    await baseline.close();
    await vault.stop();
    for (const schema of schemas) await dropSchema(schema);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
