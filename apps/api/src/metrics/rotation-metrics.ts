import { Injectable, Logger, OnModuleDestroy, OnModuleInit, Optional } from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import { ExpiryMonitorService, NOTIFICATION_OUTCOMES, NotificationChannels, NotificationCounters, RevocationService, RotationService } from '@app/rotation';
import { describeError } from '@app/common';
import { DataSource } from 'typeorm';
import { registerHostMetrics } from './host-metrics';
import { scrapeDatabaseReads, throttledRead } from './ops-metrics';

/** Pending rotation values are counted (one query over every tenant's credentials) at most this often. */
const PENDING_ROTATION_COUNT_TTL_MS = 60_000;

/**
 * The rotation lib on /metrics, read at scrape time: rotations and revocations done by this process,
 * and credentials by expiry window as the last expiry-monitor run on this replica counted them (job
 * success and staleness are the `credential_vault_job_*` metrics); notification attempts per channel
 * and outcome, counted as NotificationCounters records them; pending rotation values of every tenant, counted at
 * most once a minute. No label carries a tenant, an id or a value.
 */
@Injectable()
export class RotationMetrics implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(RotationMetrics.name);
  private stopNotifications?: () => void;

  constructor(
    private readonly rotation: RotationService,
    private readonly revocation: RevocationService,
    private readonly expiry: ExpiryMonitorService,
    private readonly notifications: NotificationCounters,
    @Optional() private readonly dataSource?: DataSource,
  ) {}

  onModuleDestroy(): void {
    this.stopNotifications?.();
  }

  onModuleInit(): void {
    const counter = (name: string, help: string, read: () => number) => {
      let seen = 0;
      return new Counter({
        name,
        help,
        registers: [],
        collect() {
          const now = read();
          this.inc(Math.max(0, now - seen));
          seen = now;
        },
      });
    };
    const expiry = this.expiry;
    const pending = throttledRead(PENDING_ROTATION_COUNT_TTL_MS, scrapeDatabaseReads(this.dataSource ?? this)(() => this.rotation.pendingRotationCount()), (e) =>
      this.logger.warn(`pending rotation values could not be counted, keeping the last sample: ${describeError(e)}`),
    );
    const notifications = new Counter({
      name: 'credential_vault_notifications_total',
      help: 'Notification attempts by channel (bus, webhook, email) and outcome: sent, skipped (channel not set up for the tenant), failed (will be retried), given_up (retries exhausted), refused (given up at once: a permanent refusal such as an SMTP 5xx or an HTTP 4xx), duplicate (a redelivered event found the channel done)',
      labelNames: ['channel', 'outcome'],
      registers: [],
    });
    // Every series from 0: an alert on increase() needs a sample before the first increment, or it misses it.
    for (const channel of Object.values(NotificationChannels)) for (const outcome of NOTIFICATION_OUTCOMES) notifications.inc({ channel, outcome }, 0);
    for (const { channel, outcome, count } of this.notifications.snapshot()) notifications.inc({ channel, outcome }, count);
    this.stopNotifications = this.notifications.onRecord((channel, outcome) => notifications.inc({ channel, outcome }));
    registerHostMetrics([
      notifications,
      counter('credential_vault_rotations_total', 'Credential rotations performed by this process (manual and automatic)', () => this.rotation.rotationCount()),
      counter('credential_vault_revocations_total', 'Credentials revoked by this process', () => this.revocation.revocationCount()),
      new Gauge({
        name: 'credential_vault_credentials_expiring',
        help: 'Credentials by expiry window (expired in the last 30 days, expiring within 1/7/14/30 days; cumulative) at the last expiry-monitor run on this replica',
        labelNames: ['window'],
        registers: [],
        collect() {
          this.reset();
          const w = expiry.windows();
          if (w) for (const [window, n] of Object.entries(w)) this.set({ window }, n);
        },
      }),
      new Gauge({
        name: 'credential_vault_rotation_pending_values',
        help: 'Pending rotation values, all tenants: values a rotation handler minted whose vault write failed (or whose process died before the commit), kept envelope-encrypted until the next rotation writes them (or their credential is deleted or revoked)',
        registers: [],
        async collect() {
          const n = await pending();
          if (n !== undefined) this.set(n);
        },
      }),
    ]);
  }
}
