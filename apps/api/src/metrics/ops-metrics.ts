import { Injectable, Logger, OnModuleInit, Optional } from '@nestjs/common';
import { OnEvent } from '@nestjs/event-emitter';
import { Counter, Gauge } from 'prom-client';
import { describeError, Outbox } from '@app/common';
import { CredentialExpiryScanner, CredentialStatus, CredentialType, KeyEncryptionKeyHealthCheck, VaultValueDeletion } from '@app/credentials';
import { OAuthRefreshEvents, type OAuthRefreshedEvent, type OAuthRefreshFailedEvent, type OAuthRefreshTrigger } from '@app/oauth-refresh';
import { DataSource } from 'typeorm';
import { registerHostMetrics } from './host-metrics';

const DAY_MS = 86_400_000;
/** The outbox backlog is read at most this often (one indexed query; every replica reports the cluster's). */
const OUTBOX_BACKLOG_TTL_MS = 15_000;
/** A scrape never scans more often than this: the gauge is for alerting in days, not seconds. */
const CERT_SCAN_TTL_MS = 60_000;
/**
 * The longest a scrape waits for a read in flight (the database's, the vault's): past it, the last samples. A
 * scrape held by a stalled database (its query deadline: 40 s) would time out at Prometheus and drop every series,
 * the database alerts' and the pool's with them. The read goes on, for the next scrape.
 */
const SCRAPE_WAIT_MS = 500;
/** Certificates past expiry are counted for this long (the expiry monitor's look-back). */
const EXPIRED_CERT_LOOKBACK_DAYS = 30;
const CERT_WINDOWS = [
  { window: 'expired', days: 0 },
  { window: '7d', days: 7 },
  { window: '30d', days: 30 },
] as const;

const REFRESH_OUTCOMES = ['refreshed', 'failed_retryable', 'failed_reauth', 'failed'] as const;
const REFRESH_TRIGGERS: readonly OAuthRefreshTrigger[] = ['on_demand', 'proactive', 'token_rejected'];

/**
 * What the alert rules in ops/alerts.yml need beyond the libs' own counters:
 * - OAuth refreshes by outcome, counted from the lib's events (delivered by the outbox on the
 *   replica that dispatches, so cluster-wide each refresh counts once; no tenant or id label);
 * - client certificates (and their private keys) still active past or near expiry, across every
 *   tenant, from the indexed expiry scan, at most once a minute;
 * - whether the envelope key-encryption key can wrap and unwrap (when one is configured);
 * - the outbox's undelivered events, cluster-wide (every replica reports the same table), at most every 15 s;
 * - the credential deletes whose Key Vault side (versions disabled, secrets soft-deleted) is not done yet, likewise.
 */
@Injectable()
export class OpsMetrics implements OnModuleInit {
  private readonly refreshes = new Counter({
    name: 'credential_vault_oauth_refreshes_total',
    help: 'OAuth token refreshes by outcome (refreshed; failed_retryable; failed_reauth: the connection needs re-authorisation; failed)',
    labelNames: ['outcome', 'trigger'],
    registers: [],
  });
  private readonly logger = new Logger(OpsMetrics.name);

  constructor(
    private readonly scanner: CredentialExpiryScanner,
    private readonly kekHealth: KeyEncryptionKeyHealthCheck,
    private readonly outbox: Outbox,
    private readonly vaultDeletion: VaultValueDeletion,
    @Optional() private readonly dataSource?: DataSource,
  ) {}

  onModuleInit(): void {
    // Every series from 0: an alert on increase() needs a sample before the first increment, or it misses it.
    for (const outcome of REFRESH_OUTCOMES) for (const trigger of REFRESH_TRIGGERS) this.refreshes.inc({ outcome, trigger }, 0);
    const inTurn = scrapeDatabaseReads(this.dataSource ?? this);
    const certCounts = throttledRead(CERT_SCAN_TTL_MS, inTurn(() => this.scanCertificates()), (e) =>
      this.logger.warn(`Client certificate expiry scan failed, keeping the last counts: ${describeError(e)}`),
    );
    // Every scrape checks it again (the service keeps its own answer), waiting at most SCRAPE_WAIT_MS.
    const kek = throttledRead(0, () => this.kekHealth.checkKeyEncryptionKey(), () => undefined);
    // Both gauges of one scrape share a read.
    const backlog = throttledRead(OUTBOX_BACKLOG_TTL_MS, inTurn(() => this.outbox.backlog()), (e) =>
      this.logger.warn(`the outbox backlog could not be read, keeping the last samples: ${describeError(e)}`),
    );
    const vaultDeletes = throttledRead(OUTBOX_BACKLOG_TTL_MS, inTurn(() => this.vaultDeletion.pending()), (e) =>
      this.logger.warn(`the pending vault deletes could not be counted, keeping the last sample: ${describeError(e)}`),
    );
    registerHostMetrics([
      this.refreshes,
      new Gauge({
        name: 'credential_vault_client_certificates_expiring',
        help: 'Client certificates past expiry within the last 30 days and not replaced (window="expired"; active or marked expired) or expiring within 7/30 days (cumulative), all tenants',
        labelNames: ['window'],
        registers: [],
        async collect() {
          for (const [window, n] of Object.entries((await certCounts()) ?? {})) this.set({ window }, n);
        },
      }),
      new Gauge({
        name: 'credential_vault_envelope_kek_usable',
        help: '1 while the envelope key-encryption key wraps and unwraps, 0 while it cannot be used (missing, disabled, expired, wrong operations, no permission); no sample without one or before the vault first answered',
        labelNames: ['key'],
        registers: [],
        async collect() {
          const h = await kek();
          // `unknown` (the vault did not answer) keeps the last sample: the vault's own alerts cover an outage.
          if (h && h.status !== 'unknown') this.set({ key: h.keyName }, h.status === 'usable' ? 1 : 0);
        },
      }),
      // While the database does not answer (readiness says so), both keep their last sample: a 0 would read as "all delivered".
      new Gauge({
        name: 'credential_vault_outbox_pending_events',
        help: 'Outbox events not yet delivered to every handler, cluster-wide (state="retrying": their delivery failed at least once and is backing off)',
        labelNames: ['state'],
        registers: [],
        async collect() {
          const b = await backlog();
          if (b) {
            this.set({ state: 'all' }, b.pending);
            this.set({ state: 'retrying' }, b.retrying);
          }
        },
      }),
      new Gauge({
        name: 'credential_vault_outbox_oldest_pending_age_seconds',
        help: 'Age of the oldest undelivered outbox event, cluster-wide (0 when none is pending)',
        registers: [],
        async collect() {
          const b = await backlog();
          if (b) this.set(b.oldestCreatedAt ? Math.max(0, (Date.now() - b.oldestCreatedAt.getTime()) / 1000) : 0);
        },
      }),
      new Gauge({
        name: 'credential_vault_vault_deletes_pending',
        help: 'Deleted credentials whose Key Vault side (versions disabled, secrets soft-deleted) is not done yet, cluster-wide: the outbox retries it; the value stays readable at the vault meanwhile',
        registers: [],
        async collect() {
          const n = await vaultDeletes();
          if (n !== undefined) this.set(n);
        },
      }),
    ]);
  }

  @OnEvent(OAuthRefreshEvents.REFRESHED)
  onRefreshed(event: OAuthRefreshedEvent): void {
    this.refreshes.inc({ outcome: 'refreshed', trigger: event.trigger });
  }

  @OnEvent(OAuthRefreshEvents.REFRESH_FAILED)
  onRefreshFailed(event: OAuthRefreshFailedEvent): void {
    const outcome: (typeof REFRESH_OUTCOMES)[number] = event.reauthRequired ? 'failed_reauth' : event.retryable ? 'failed_retryable' : 'failed';
    this.refreshes.inc({ outcome, trigger: event.trigger });
  }

  /**
   * Counts by window, scanned at most every CERT_SCAN_TTL_MS (`throttledRead`). A failed scan (the database down)
   * keeps the last counts and is tried again a TTL later: a scrape must not fail, or every series (the database
   * alerts' too) vanishes.
   */
  private async scanCertificates(): Promise<Record<string, number>> {
    const now = Date.now();
    const counts: Record<string, number> = Object.fromEntries(CERT_WINDOWS.map((w) => [w.window, 0]));
    // From 30 days back (as the expiry monitor looks back), soonest first, so the scan stops at the widest
    // window; only certificates near or past expiry are read. Past expiry, a certificate is `expired` once the
    // monitor or a refused read marked it so, and still unusable: counted until it is replaced or removed.
    let after: { expiresAt: Date; id: string } | undefined = { expiresAt: new Date(now - EXPIRED_CERT_LOOKBACK_DAYS * DAY_MS), id: '' };
    for (;;) {
      const page = await this.scanner.scanExpiringAcrossTenants({
        before: new Date(now + 30 * DAY_MS),
        type: CredentialType.CLIENT_CERTIFICATE,
        statuses: [CredentialStatus.ACTIVE, CredentialStatus.EXPIRED],
        limit: 1000,
        after,
      });
      for (const ref of page) {
        for (const w of CERT_WINDOWS) if (ref.expiresAt.getTime() <= now + w.days * DAY_MS) counts[w.window]++;
      }
      if (page.length < 1000) break;
      const last = page[page.length - 1];
      after = { expiresAt: last.expiresAt, id: last.id };
    }
    return counts;
  }
}

const databaseReadQueues = new WeakMap<object, { tail: Promise<unknown> }>();

/**
 * Wraps the scrape reads of one database (`database`: its DataSource) so they run one after another: a scrape takes at
 * most one pool connection, so on a small pool it neither queues for a connection behind itself nor shows as a waiter
 * in credential_vault_database_pool_waiting (the certificate scan, the outbox backlog and the pending rotation count
 * would otherwise take three at once).
 */
export function scrapeDatabaseReads(database: object): <T>(read: () => Promise<T>) => () => Promise<T> {
  let queue = databaseReadQueues.get(database);
  if (!queue) databaseReadQueues.set(database, (queue = { tail: Promise.resolve() }));
  const q = queue;
  return (read) => () => {
    const run = q.tail.then(read, read);
    q.tail = run.catch(() => undefined);
    return run;
  };
}

/**
 * A read for scrapes, made at most every `ttlMs` (counted from its start; scrapes meanwhile share it). A failed read
 * is reported to `onError` and not retried before `ttlMs` either. Returns what the last read gave: undefined before
 * the first and while the last one failed — a gauge left unset then keeps its last sample. A scrape waits for a read
 * in flight at most SCRAPE_WAIT_MS, then takes what the one before gave.
 */
export function throttledRead<T>(ttlMs: number, read: () => Promise<T>, onError: (e: unknown) => void): () => Promise<T | undefined> {
  let last: T | undefined;
  let readAt = -Infinity;
  let reading: Promise<void> | undefined;
  return async () => {
    const now = Date.now();
    if (!reading && now - readAt >= ttlMs) {
      readAt = now;
      reading = read()
        .then(
          (v) => void (last = v),
          (e: unknown) => {
            last = undefined;
            onError(e);
          },
        )
        .finally(() => (reading = undefined));
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([reading, new Promise<void>((resolve) => (timer = setTimeout(resolve, SCRAPE_WAIT_MS)))]);
    clearTimeout(timer);
    return last;
  };
}
