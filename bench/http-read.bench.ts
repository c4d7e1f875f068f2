/**
 * HTTP read path: `GET /v1/credentials/:id/value` through the reference host (auth, rate limiting,
 * tenant check, cache, buffered audit) vs a minimal Nest/Fastify route that calls
 * `SecretClient.getSecret` per request — both against the same local vault, in one run.
 * Prints one JSON line per figure and writes "## HTTP read path" in docs/BENCHMARKS.md.
 *
 *   npm run bench:http -- [--ops 4000] [--concurrency 32] [--no-write]
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
import { emulatorCredential, KeyVaultEmulator } from '@app/keyvault-emulator';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { createApp } from '../apps/api/src/bootstrap';
import { loadAppConfig } from '../apps/api/src/config/app.config';
import { LoadResult, machineLine, runLoad, today, writeBenchmarkSection } from './support/measure';

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

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { ops: { type: 'string', default: '4000' }, concurrency: { type: 'string', default: '32' }, 'no-write': { type: 'boolean' } },
  });
  const ops = Number(values.ops);
  const concurrency = Number(values.concurrency);
  const dir = mkdtempSync(join(tmpdir(), 'cv-bench-http-'));
  // Throttling off: we measure our overhead and the SDK's, not Azure's 400/s budget.
  const vault = await KeyVaultEmulator.start({ dataDir: join(dir, 'vault'), throttle: false, quiet: true });
  const key = generateApiKey('bench', 'bench', ['admin']);
  const host = await createApp(
    loadAppConfig({
      NODE_ENV: 'test',
      PORT: '0',
      LOG_LEVEL: 'warn',
      DATABASE_PATH: join(dir, 'db.sqlite'),
      KEY_VAULT_URL: vault.vaultUrl,
      KEY_VAULT_CREDENTIAL: 'static',
      KEY_VAULT_CA_CERT_PATH: vault.caCertPath,
      KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: 'true',
      AUTH_API_KEYS: JSON.stringify([key.entry]),
      RATE_LIMIT_PER_MINUTE: '1000000',
    }),
  );
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
    const hostUrl = (await host.getUrl()).replace('[::1]', '127.0.0.1');
    const baseUrl = (await baseline.getUrl()).replace('[::1]', '127.0.0.1');
    const headers = { 'x-api-key': key.key, 'content-type': 'application/json' };
    const value = `bench-${'v'.repeat(48)}`;
    const created = (await (
      await fetch(`${hostUrl}/v1/credentials`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ integrationId: 'bench', connectionId: 'c1', type: 'api_key', value }),
      })
    ).json()) as { id: string };
    await client.setSecret('bench-direct', value);

    const expectOk = async (res: Response) => {
      if (res.status !== 200) throw new Error(`status ${res.status}`);
      await res.arrayBuffer();
    };
    const ours = () => fetch(`${hostUrl}/v1/credentials/${created.id}/value`, { headers }).then(expectOk);
    const direct = () => fetch(`${baseUrl}/baseline/bench-direct`).then(expectOk);

    await runLoad(300, concurrency, ours); // warm-up: JIT, connections, cache
    await runLoad(300, concurrency, direct);
    const statsBefore = vault.stats().byOperation.getSecret ?? 0;
    const oursResult = await runLoad(ops, concurrency, ours);
    const vaultCallsOurs = (vault.stats().byOperation.getSecret ?? 0) - statsBefore;
    const directResult = await runLoad(Math.max(500, Math.floor(ops / 2)), concurrency, direct);

    const figures = [
      { bench: 'http-read', path: 'host GET /v1/credentials/:id/value (warm)', vaultCalls: vaultCallsOurs, ...oursResult },
      { bench: 'http-read', path: 'baseline route calling SecretClient.getSecret per request', ...directResult },
    ];
    for (const f of figures) process.stdout.write(`${JSON.stringify(f)}\n`);
    const ratio = Math.round((oursResult.opsPerSec / directResult.opsPerSec) * 10) / 10;
    process.stdout.write(`${JSON.stringify({ bench: 'http-read', throughputRatio: ratio })}\n`);
    if (!values['no-write']) {
      const row = (name: string, r: LoadResult) => `| ${name} | ${r.ops} | ${r.concurrency} | ${r.opsPerSec} | ${r.p50Ms} | ${r.p99Ms} | ${r.errors} |`;
      writeBenchmarkSection(
        'HTTP read path',
        `Measured ${today()} with \`npm run bench:http\` (bench/http-read.bench.ts). Both servers are Nest 12 on Fastify in one
process with the load generator (Node fetch, keep-alive), against the same local vault over HTTPS with throttling off.
The host route does API-key authentication, rate limiting, the tenant check, the in-process cache and a buffered audit
row per read; the baseline route only calls the SDK.

Machine: ${machineLine()}.

| route | requests | concurrency | req/s | p50 ms | p99 ms | errors |
|---|---|---|---|---|---|---|
${row('host `GET /v1/credentials/:id/value` (warm)', oursResult)}
${row('baseline: `SecretClient.getSecret` per request', directResult)}

Host throughput is **${ratio}×** the baseline; the host's ${oursResult.ops} reads made ${vaultCallsOurs} vault calls.`,
      );
    }
  } finally {
    await baseline.close();
    await host.close();
    await vault.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
