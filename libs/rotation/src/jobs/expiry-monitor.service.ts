import { Inject, Injectable, Logger } from '@nestjs/common';
import { Clock, DistributedLock, LOCK_KEYS, Outbox, TransactionRunner, systemContext } from '@app/common';
import { CredentialExpiryScanner, CredentialsService, CredentialStatus, isInternalCredential, type CredentialMetadata, type ExpiringCredentialRef } from '@app/credentials';
import type { RotationPolicyEntity } from '../entities/rotation-policy.entity';
import { RotationPolicyService } from '../policies/rotation-policy.service';
import { EXPIRY_MONITOR_ACTOR, ROTATION_CLOCK, ROTATION_LOCK, ROTATION_RESOLVED_OPTIONS } from '../rotation.constants';
import { RotationEvents, type CredentialNoticePayload } from '../rotation.events';
import type { ResolvedRotationOptions } from '../rotation.options';
import { RotationNoticeRepository } from './rotation-notice.repository';

export const DAY_MS = 86_400_000;
/** Credentials that expired longer ago than this are not looked at again (bounds every run; a run missed for that long is an outage). */
export const EXPIRED_LOOKBACK_DAYS = 30;

/** What one run of the expiry monitor did. */
export interface ExpiryMonitorResult {
  acquired: boolean;
  scanned: number;
  /** `credential.expiring` events raised. */
  warned: number;
  /** Credentials marked expired (`credential.expired` raised). */
  expired: number;
  failed: number;
  /** Credentials by how soon they expire, as seen by this run (for metrics). */
  windows: ExpiryWindows;
}

/** Credentials expiring within each window (days) — `expired` is past expiry. Cumulative. */
export type ExpiryWindows = Record<'expired' | '1d' | '7d' | '14d' | '30d', number>;

/**
 * The expiry-monitor's work. Every credential entering a warning threshold (30/14/7/1 days before its
 * expiry, only those ≤ its policy's `warnBeforeDays`) raises `credential.expiring` once per credential
 * version and threshold, ever: the dedupe row (`cv_rotation_notices`) and the outbox event commit in
 * one transaction per credential. A run that finds several thresholds passed (it missed runs) raises
 * the tightest and records the wider ones as passed over. A credential past its expiry gets status
 * `expired` and one `credential.expired` through the credentials lib's expiry transition — the one
 * a refused read makes too, so the event (and its notification) happens once whichever comes first;
 * when a read came first, the run only records its dedupe row. A crash mid-run leaves each credential
 * either done or untouched; the next run finishes.
 */
@Injectable()
export class ExpiryMonitorService {
  private readonly logger = new Logger(ExpiryMonitorService.name);
  private lastWindows: ExpiryWindows | null = null;

  constructor(
    private readonly scanner: CredentialExpiryScanner,
    private readonly credentials: CredentialsService,
    private readonly policies: RotationPolicyService,
    private readonly notices: RotationNoticeRepository,
    private readonly runner: TransactionRunner,
    private readonly outbox: Outbox,
    @Inject(ROTATION_LOCK) private readonly lock: DistributedLock,
    @Inject(ROTATION_CLOCK) private readonly clock: Clock,
    @Inject(ROTATION_RESOLVED_OPTIONS) private readonly options: ResolvedRotationOptions,
  ) {}

  /** The windows counted by the last run on this replica (null before the first). */
  windows(): ExpiryWindows | null {
    return this.lastWindows;
  }

  /** One run, under `LOCK_KEYS.rotationExpiryMonitor`: exclusive across replicas whoever calls it; `LockLostError` (9003) if the lock is lost mid-run. */
  async runOnce(): Promise<ExpiryMonitorResult> {
    const result = await this.lock.tryRun(LOCK_KEYS.rotationExpiryMonitor, (held) => this.work(held));
    if (!result.acquired) return { acquired: false, scanned: 0, warned: 0, expired: 0, failed: 0, windows: emptyWindows() };
    return result.value;
  }

  /** Stops before its next credential once `held` aborts (rejecting with its `LockLostError`): the next run, here or where the lock went, checks the rest. */
  private async work(held: AbortSignal): Promise<ExpiryMonitorResult> {
    const now = this.clock.now();
    const { thresholdsDays, batchSize } = this.options.expiryMonitor;
    const horizon = new Date(now.getTime() + Math.max(30, ...thresholdsDays) * DAY_MS);
    const out: ExpiryMonitorResult = { acquired: true, scanned: 0, warned: 0, expired: 0, failed: 0, windows: emptyWindows() };
    const overrides = new Map<string, RotationPolicyEntity[]>();
    let after: { expiresAt: Date; id: string } | undefined = { expiresAt: new Date(now.getTime() - EXPIRED_LOOKBACK_DAYS * DAY_MS), id: '' };
    for (;;) {
      const page = await this.scanner.scanExpiringAcrossTenants({
        before: horizon,
        statuses: [CredentialStatus.ACTIVE, CredentialStatus.EXPIRED, CredentialStatus.NEEDS_REAUTH],
        limit: batchSize,
        after,
      });
      for (const ref of page) {
        held.throwIfAborted();
        if (isInternalCredential(ref)) continue; // the lib's own (a pending rotation value, a staged webhook secret)
        out.scanned++;
        countWindow(out.windows, ref.expiresAt.getTime() - now.getTime());
        try {
          if (!overrides.has(ref.tenantId)) overrides.set(ref.tenantId, await this.policies.tenantOverrides(ref.tenantId));
          const outcome = await this.check(ref, now, overrides.get(ref.tenantId)!);
          if (outcome === 'warned') out.warned++;
          if (outcome === 'expired') out.expired++;
        } catch (e) {
          // One credential's trouble must not stop the others; the next run tries it again.
          out.failed++;
          this.logger.warn(`expiry check of credential ${ref.id} (tenant ${ref.tenantId}) failed: ${(e as Error).name}`);
        }
      }
      if (page.length < batchSize) break;
      const last = page[page.length - 1];
      after = { expiresAt: last.expiresAt, id: last.id };
    }
    this.lastWindows = out.windows;
    if (out.warned || out.expired || out.failed) this.logger.log(`expiry monitor: ${out.scanned} scanned, ${out.warned} warned, ${out.expired} expired, ${out.failed} failed`);
    return out;
  }

  private async check(ref: ExpiringCredentialRef, now: Date, overrides: RotationPolicyEntity[]): Promise<'warned' | 'expired' | 'none'> {
    const ctx = systemContext(ref.tenantId, EXPIRY_MONITOR_ACTOR);
    const leftMs = ref.expiresAt.getTime() - now.getTime();
    if (leftMs <= 0) {
      const meta = await this.credentials.getMetadata(ctx, ref.id);
      const raised = await this.notices.raised(ref.id, meta.version);
      if (hasNotice(raised, 'expired', meta.expiresAt)) return 'none';
      if (meta.status === CredentialStatus.NEEDS_REAUTH) {
        // needs_reauth keeps its status (reconnecting fixes both); reads never mark it, so the event is the monitor's.
        await this.runner.run(async () => {
          const eventId = await this.outbox.add({ name: RotationEvents.EXPIRED, tenantId: ref.tenantId, payload: { ...notice(meta, 'Rotate the credential: its value has expired and is no longer served.') } });
          await this.notices.record({ credentialId: ref.id, version: meta.version, notice: noticeKey('expired', meta.expiresAt), tenantId: ref.tenantId, eventId, createdAt: now });
        });
        return 'expired';
      }
      // The same transition a refused read makes: whichever comes first stores `expired` and raises the
      // one `credential.expired` (which notifies); the other finds it done. The dedupe row commits with it.
      return this.runner.run(async () => {
        const t = await this.scanner.markExpired({ tenantId: ref.tenantId, id: ref.id }, EXPIRY_MONITOR_ACTOR);
        if (t.status !== CredentialStatus.EXPIRED) return 'none'; // rotated or deleted meanwhile
        if (t.version !== meta.version && hasNotice(await this.notices.raised(ref.id, t.version), 'expired', meta.expiresAt)) return 'none';
        await this.notices.record({ credentialId: ref.id, version: t.version, notice: noticeKey('expired', meta.expiresAt), tenantId: ref.tenantId, eventId: t.eventId, createdAt: now });
        return t.marked ? 'expired' : 'none';
      });
    }
    const policy = await this.policies.resolve({ id: ref.id, tenantId: ref.tenantId, integrationId: ref.integrationId, type: ref.type }, overrides);
    const crossed = this.options.expiryMonitor.thresholdsDays.filter((t) => t <= policy.warnBeforeDays && leftMs <= t * DAY_MS);
    if (crossed.length === 0) return 'none';
    const tightest = Math.min(...crossed);
    const meta = await this.credentials.getMetadata(ctx, ref.id);
    const raised = await this.notices.raised(ref.id, meta.version);
    if (hasNotice(raised, thresholdNotice(tightest), meta.expiresAt)) return 'none';
    await this.runner.run(async () => {
      const payload = notice(meta, `Rotate the credential before it expires (within ${tightest} day${tightest === 1 ? '' : 's'}).`);
      const eventId = await this.outbox.add({ name: RotationEvents.EXPIRING, tenantId: ref.tenantId, payload: { ...payload, thresholdDays: tightest } });
      await this.notices.record({ credentialId: ref.id, version: meta.version, notice: noticeKey(thresholdNotice(tightest), meta.expiresAt), tenantId: ref.tenantId, eventId, createdAt: now });
      // Wider thresholds passed while no run happened: recorded, never sent late.
      for (const t of crossed) {
        if (t !== tightest && !hasNotice(raised, thresholdNotice(t), meta.expiresAt)) {
          await this.notices.record({ credentialId: ref.id, version: meta.version, notice: noticeKey(thresholdNotice(t), meta.expiresAt), tenantId: ref.tenantId, eventId: null, createdAt: now });
        }
      }
    });
    return 'warned';
  }
}

export function thresholdNotice(days: number): string {
  return `expiry:${days}d`;
}

/**
 * The dedupe key of an expiry notice: the notice and the expiry it is about (`expiry:7d@1796417790`,
 * `expired@1796417790`, seconds). A new expiry set without a new version (PATCH `expiresAt`) gets its own
 * warnings, and a credential made active again with a later expiry is marked expired again.
 */
export function noticeKey(notice: string, expiresAt: Date | null | undefined): string {
  return expiresAt ? `${notice}@${Math.floor(expiresAt.getTime() / 1000)}` : notice;
}

/** Whether `notice` was raised for this expiry — or, written before the keys named the expiry, for the version. */
function hasNotice(raised: Set<string>, notice: string, expiresAt: Date | null | undefined): boolean {
  return raised.has(noticeKey(notice, expiresAt)) || raised.has(notice);
}

function notice(meta: CredentialMetadata, action: string): CredentialNoticePayload {
  return {
    credentialId: meta.id,
    tenantId: meta.tenantId,
    integrationId: meta.integrationId,
    connectionId: meta.connectionId,
    type: meta.type,
    version: meta.version,
    expiresAt: meta.expiresAt ? meta.expiresAt.toISOString() : null,
    action,
  };
}

export { notice as noticePayload };

function emptyWindows(): ExpiryWindows {
  return { expired: 0, '1d': 0, '7d': 0, '14d': 0, '30d': 0 };
}

function countWindow(w: ExpiryWindows, leftMs: number): void {
  if (leftMs <= 0) {
    w.expired++;
    return;
  }
  if (leftMs <= DAY_MS) w['1d']++;
  if (leftMs <= 7 * DAY_MS) w['7d']++;
  if (leftMs <= 14 * DAY_MS) w['14d']++;
  if (leftMs <= 30 * DAY_MS) w['30d']++;
}
