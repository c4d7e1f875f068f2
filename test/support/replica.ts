import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { closeRedisConnection } from '@app/credentials';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { createApp } from '../../apps/api/src/bootstrap';
import { loadAppConfig } from '../../apps/api/src/config/app.config';
import { EmbeddedVault } from '../../apps/api/src/vault/embedded-vault';
import { REDIS_URL } from './database';
import { switchedTo } from './backends';
import { startTestHost, type TestHost } from './host';

export interface Replica {
  app: NestFastifyApplication;
  baseUrl: string;
}

/** A second replica of `first` (a Nest app in this process): same database, Key Vault (the first one's local vault over HTTPS) and Redis. */
export async function startReplica(first: TestHost, extraEnv: Record<string, string> = {}): Promise<Replica> {
  const vault = first.app.get(EmbeddedVault).emulator!;
  const caPath = join(first.dataDir, 'vault-ca.pem');
  writeFileSync(caPath, vault.caCertPem);
  const app = await createApp(
    loadAppConfig(
      switchedTo(first.env, {
        KEY_VAULT_URL: vault.vaultUrl,
        KEY_VAULT_CREDENTIAL: 'static',
        KEY_VAULT_CA_CERT_PATH: caPath,
        KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: 'true',
        ...extraEnv,
      }),
    ),
  );
  return { app, baseUrl: (await app.getUrl()).replace('[::1]', '127.0.0.1') };
}

/** Fails the suite (no skip) when Redis is not there. */
export async function requireRedis(): Promise<Redis> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await redis.connect();
    await redis.ping();
  } catch (e) {
    await closeRedisConnection(redis);
    throw new Error(`Redis is required for this test but is not reachable at ${REDIS_URL} (${(e as Error).message}). Start it (see README "Running the tests").`);
  }
  return redis;
}

/** Deletes every Redis key starting with `prefix` (a test's own). */
export async function deleteRedisKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    if (keys.length) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

export interface ReplicaPair {
  a: TestHost;
  b: Replica;
  /** A client of the test's own, when the pair shares Redis. */
  redis?: Redis;
}

/**
 * Two replicas on one PostgreSQL schema and the first one's local vault: A (a test host booted with `env`) and B (a
 * replica of it). With `redisPrefix`, both share Redis under that `REDIS_KEY_PREFIX` (a failure, never a skip, when
 * Redis is not there).
 */
export async function startReplicaPair(env: Record<string, string>, redisPrefix?: string): Promise<ReplicaPair> {
  const redis = redisPrefix === undefined ? undefined : await requireRedis();
  let a: TestHost | undefined;
  try {
    a = await startTestHost('postgres', { ...(redisPrefix === undefined ? {} : { REDIS_URL, REDIS_KEY_PREFIX: redisPrefix }), ...env });
    return { a, b: await startReplica(a), redis };
  } catch (e) {
    await a?.close();
    if (redis) await closeRedisConnection(redis);
    throw e;
  }
}

/** Closes what `startReplicaPair` started (any part of it that did start), and deletes the Redis keys of `redisPrefix`. */
export async function stopReplicaPair(pair: Partial<ReplicaPair>, redisPrefix?: string): Promise<void> {
  await pair.b?.app.close();
  await pair.a?.close();
  if (pair.redis) {
    if (redisPrefix !== undefined) await deleteRedisKeys(pair.redis, redisPrefix);
    await closeRedisConnection(pair.redis);
  }
}

/** `fetch` as one API key, JSON both ways: `{ status, body }`. */
export function jsonCaller(apiKey: string) {
  return async (base: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { 'x-api-key': apiKey, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
}
