import { Module } from '@nestjs/common';
import { AuditModule } from '@app/audit';
import { CredentialsModule } from '@app/credentials';
import { AuditAnchorModule } from '../audit/audit-anchor.module';
import { AuditController } from '../audit/audit.controller';
import { APP_CONFIG, AppConfig } from '../config/app.config';
import { HostMetrics } from '../metrics/host-metrics';
import { HostRedis } from '../redis/host-redis';
import { RotationHttpModule } from '../rotation/rotation-http.module';
import { ConnectionsController, CredentialsController } from './credentials.controller';

/** The credentials and audit libs configured from the host's config, and their HTTP surface. */
@Module({
  imports: [
    AuditModule.forRootAsync({
      isGlobal: true,
      inject: [APP_CONFIG],
      useFactory: (c: AppConfig) => ({
        failClosed: c.audit.failClosed,
        preparedStatements: c.audit.preparedStatements,
        sqliteWriteWorker: c.audit.sqliteWriteWorker,
        retention: c.audit.retention,
        anchor: c.audit.anchor,
      }),
    }),
    AuditAnchorModule,
    // Its RevocationService: a PATCH to status revoked runs the revoke route's revoke.
    RotationHttpModule,
    CredentialsModule.forRootAsync({
      isGlobal: true,
      inject: [APP_CONFIG, HostRedis],
      useFactory: (c: AppConfig, redis: HostRedis) => ({
        cache: {
          ttlMs: c.credentials.cacheTtlMs,
          maxStaleMs: c.credentials.cacheMaxStaleMs,
          maxEntries: c.credentials.cacheMaxEntries,
          // The shared tier uses the host's connections: its command connection and one subscriber of its own.
          store:
            c.credentials.cacheTier === 'redis'
              ? { type: 'redis', client: redis.client, subscriber: () => redis.subscriber('cache-invalidation'), keyPrefix: `${redis.keyPrefix}cache:`, operationTimeoutMs: c.credentials.cacheRedisTimeoutMs }
              : { type: 'memory' },
          invalidation: c.credentials.cacheInvalidation,
          heartbeat: c.credentials.cacheHeartbeat,
        },
        integrations: c.credentials.integrations,
        vault: { namePrefix: c.credentials.vaultSecretPrefix },
        envelope: c.credentials.envelope,
        orphanVersions: c.credentials.orphanVersions,
        // Over HTTP every value read is its own audit row: no folding, even when a caller repeats its
        // X-Request-Id (and no per-request fold bookkeeping for reads that would never fold anyway).
        readAudit: { coalesceWindowMs: 0 },
      }),
    }),
  ],
  controllers: [CredentialsController, ConnectionsController, AuditController],
  providers: [HostMetrics],
})
export class CredentialsHttpModule {}
