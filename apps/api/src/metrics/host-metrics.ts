import { Injectable, OnModuleInit } from '@nestjs/common';
import { Counter, Gauge, Metric, register } from 'prom-client';
import { AuditService } from '@app/audit';
import { CredentialCache, CredentialOrphanVersions } from '@app/credentials';

const PREFIX = 'credential_vault_';

/** A lib counter (monotonic) published as a Prometheus counter, read at scrape time. */
function mirroredCounter(name: string, help: string, read: () => number): Metric {
  let last = 0;
  return new Counter({
    name,
    help,
    registers: [],
    collect() {
      const now = read();
      // A lib-side reset (resetStats) is not a process restart: only count increases.
      if (now > last) this.inc(now - last);
      last = now;
    },
  });
}

/** Lib counters by labels (`read`: each series' labels and count), published like `mirroredCounter`, each series on its own. */
export function mirroredCounterBy(name: string, help: string, labelNames: string[], read: () => Array<[Record<string, string>, number]>): Metric {
  const seen = new Map<string, number>();
  return new Counter({
    name,
    help,
    labelNames,
    registers: [],
    collect() {
      for (const [labels, n] of read()) {
        const series = JSON.stringify(labelNames.map((l) => labels[l]));
        this.inc(labels, Math.max(0, n - (seen.get(series) ?? 0)));
        seen.set(series, n);
      }
    },
  });
}

/** Lib counters by one label (`read`: label value → count), published like `mirroredCounter`, each label on its own. */
export function mirroredLabelledCounter(name: string, help: string, label: string, read: () => Record<string, number>): Metric {
  return mirroredCounterBy(name, help, [label], () => Object.entries(read()).map(([value, n]) => [{ [label]: value }, n]));
}

function gauge(name: string, help: string, read: () => number): Metric {
  return new Gauge({
    name,
    help,
    registers: [],
    collect() {
      this.set(read());
    },
  });
}

/**
 * Publishes the credentials cache's and the audit log's counters on /metrics. The libs keep plain
 * counters; the host decides how they are exposed. No label carries a tenant, name or value.
 */
@Injectable()
export class HostMetrics implements OnModuleInit {
  constructor(
    private readonly cache: CredentialCache,
    private readonly audit: AuditService,
    private readonly orphans: CredentialOrphanVersions,
  ) {}

  onModuleInit(): void {
    const cache = () => this.cache.stats();
    const shared = () => cache().shared;
    const audit = () => this.audit.stats;
    const metrics = [
      mirroredCounter(`${PREFIX}cache_hits_total`, 'Credential reads answered from the cache', () => cache().hits),
      mirroredCounter(`${PREFIX}cache_misses_total`, 'Credential reads that missed the cache', () => cache().misses),
      mirroredCounter(`${PREFIX}cache_loads_total`, 'Cache misses that reached the value store (after single-flight)', () => cache().loads),
      mirroredCounter(`${PREFIX}cache_coalesced_total`, 'Cache misses that joined an in-flight load', () => cache().coalesced),
      mirroredCounter(`${PREFIX}cache_stale_served_total`, 'Stale values served because the value store failed', () => cache().staleServed),
      gauge(`${PREFIX}cache_entries`, 'Credentials cached in this process', () => cache().size),
      gauge(`${PREFIX}cache_slab_bytes`, 'Bytes of slab room holding cached entries in this process, outside the JS heap', () => cache().slabBytes ?? 0),
      gauge(`${PREFIX}cache_slab_pool_bytes`, 'Bytes of the slab pool (slabs in use and released ones kept for reuse): at most what the slabs add to RSS', () => cache().slabPoolBytes ?? 0),
      // The shared tier and the eviction fan-out (0, and healthy, when the cache is per process only).
      mirroredCounter(`${PREFIX}cache_l2_hits_total`, 'Reads answered from the shared Redis tier (decrypted entries)', () => shared()?.l2.hits ?? 0),
      mirroredCounter(`${PREFIX}cache_l2_misses_total`, 'Reads that missed the shared Redis tier', () => shared()?.l2.misses ?? 0),
      mirroredCounter(`${PREFIX}cache_l2_errors_total`, 'Shared-tier calls that failed (treated as misses)', () => shared()?.l2.errors ?? 0),
      mirroredCounter(`${PREFIX}cache_l2_rejected_total`, 'Shared-tier entries that failed to decrypt or verify (another key, tampered): misses', () => shared()?.l2.rejected ?? 0),
      mirroredCounter(`${PREFIX}cache_degraded_reads_total`, 'Reads sent to the value store uncached because evictions could not be received (or not from every replica: another REDIS_KEY_PREFIX)', () => shared()?.degradedReads ?? 0),
      mirroredCounter(`${PREFIX}cache_evictions_published_total`, 'Evictions this replica announced to the others', () => shared()?.invalidation.published ?? 0),
      mirroredCounter(`${PREFIX}cache_evictions_received_total`, 'Evictions this replica received from the others', () => shared()?.invalidation.received ?? 0),
      mirroredCounter(`${PREFIX}cache_eviction_publish_errors_total`, 'Evictions that could not be announced (the outbox sends them again)', () => shared()?.invalidation.publishErrors ?? 0),
      mirroredLabelledCounter(
        `${PREFIX}cache_fanout_lost_total`,
        'Times this replica stopped hearing evictions and dropped its cached entries, by reason: disconnected (the connection closed) or heartbeat (none heard within CACHE_HEARTBEAT_LOST_AFTER_MS)',
        'reason',
        () => shared()?.invalidation.lost ?? { disconnected: 0, heartbeat: 0 },
      ),
      gauge(`${PREFIX}cache_fanout_healthy`, '1 while this replica receives evictions (or has no fan-out), 0 while it cannot (its reads bypass the cache)', () =>
        shared()?.invalidation.healthy === false ? 0 : 1,
      ),
      gauge(`${PREFIX}audit_buffer_depth`, 'Audit rows waiting to be written', () => audit().bufferDepth),
      gauge(`${PREFIX}audit_buffer_waiters`, 'Reads waiting for audit buffer space (back-pressure)', () => audit().bufferWaiters),
      gauge(`${PREFIX}audit_healthy`, '1 while audit writes succeed, 0 while they fail', () => (audit().healthy ? 1 : 0)),
      mirroredCounter(`${PREFIX}audit_flush_failures_total`, 'Failed flushes of buffered audit rows', () => audit().flushFailures),
      mirroredCounter(`${PREFIX}audit_reads_rejected_total`, 'Reads refused while the audit log failed (fail-closed)', () => audit().readsRejected),
      mirroredCounter(`${PREFIX}audit_suspicious_activities_total`, 'Suspicious-activity detections', () => audit().suspiciousActivities),
      mirroredCounter(`${PREFIX}audit_broken_chains_total`, 'Broken audit chains found by verify or the anchoring job (tampering)', () => audit().brokenChains),
      mirroredCounter(`${PREFIX}audit_anchors_written_total`, 'Audit chain heads anchored in the anchor store', () => audit().anchorsWritten),
      mirroredCounter(`${PREFIX}audit_anchor_failures_total`, 'Audit chains the anchoring job could not anchor (store failures)', () => audit().anchorFailures),
      mirroredCounter(
        `${PREFIX}orphan_versions_disabled_total`,
        'Key Vault secret versions no metadata references (orphans of writes that crashed before their commit) the orphan-versions job disabled in this process',
        () => this.orphans.disabledTotal(),
      ),
    ];
    registerHostMetrics(metrics);
  }
}

/** Puts read-at-scrape metrics on prom-client's default registry (what /metrics serves). */
export function registerHostMetrics(metrics: Metric[]): void {
  for (const m of metrics) {
    // Apps re-created in one process (tests) share the default registry: the newest app wins.
    register.removeSingleMetric((m as unknown as { name: string }).name);
    register.registerMetric(m);
  }
}

/**
 * Calls of the cluster-wide limits and counters (rate limits, suspicious-activity counters, OAuth
 * refresh cooldowns) answered from per-process state because Redis could not answer in time. The
 * only label is the component.
 */
export function sharedStateFallbackCounter(read: () => Record<string, number>): Metric {
  return mirroredLabelledCounter(
    `${PREFIX}shared_state_fallbacks_total`,
    'Rate-limit, suspicious-activity and OAuth-cooldown calls answered per process because Redis could not answer',
    'component',
    read,
  );
}
