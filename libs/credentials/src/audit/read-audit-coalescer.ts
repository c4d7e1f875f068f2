import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { AuditEventInput, AuditResult, AuditService } from '@app/audit';
import { Clock } from '@app/common';
import { CREDENTIALS_CLOCK, CREDENTIALS_RESOLVED_OPTIONS } from '../credentials.constants';
import type { ResolvedCredentialsOptions } from '../credentials.options';

const RESOLVED = Promise.resolve();

interface Pending {
  event: AuditEventInput;
  count: number;
  firstAtMs: number;
  lastAtMs: number;
}

type Context = AuditEventInput['context'];

/**
 * Hands read events to `AuditService.recordRead`, folding identical successful reads (same tenant,
 * actor, correlation id, credential, version) within `readAudit.coalesceWindowMs` into ONE event
 * whose details carry `reads` (how many), `firstReadAt` and `lastReadAt`. Every read is still
 * accounted for; a hot credential read 100k times a second no longer means 100k hash-chained rows.
 *
 * - Failed and denied reads are never folded (they feed suspicious-activity detection at once).
 * - While the audit log is unhealthy the read goes straight to `recordRead`, so fail-closed still
 *   refuses reads.
 * - Durability equals the audit read buffer's own: events are in memory for at most the window;
 *   pending events are flushed when the module is destroyed (before the audit buffer's final flush).
 */
@Injectable()
export class ReadAuditCoalescer implements OnModuleDestroy {
  private readonly logger = new Logger(ReadAuditCoalescer.name);
  /** Context key → resource → the pending folds of that resource (one per action + version; usually one). */
  private pending = new Map<string, Map<string, Pending[]>>();
  private pendingCount = 0;
  /**
   * The context part of the fold key, computed once per context object (in-process callers often
   * reuse one; contexts are treated as immutable, as everywhere in the libs).
   */
  private readonly contextKeys = new WeakMap<Context, string>();
  private timer?: NodeJS.Timeout;
  private readonly windowMs: number;
  private readonly maxKeys: number;

  constructor(
    private readonly audit: AuditService,
    @Inject(CREDENTIALS_CLOCK) private readonly clock: Clock,
    @Inject(CREDENTIALS_RESOLVED_OPTIONS) options: ResolvedCredentialsOptions,
  ) {
    this.windowMs = options.readAudit.coalesceWindowMs;
    this.maxKeys = options.readAudit.maxPendingKeys;
  }

  /** Resolves once the read is accounted for (folded or buffered); rejects when the audit log refuses it. */
  record(event: AuditEventInput): Promise<void> {
    if (this.windowMs === 0 || event.result !== AuditResult.SUCCESS || !this.audit.healthy) {
      return this.audit.recordRead(event);
    }
    // This is the warm read path: map lookups on strings that already exist, no allocation on a hit.
    const ctxKey = this.contextKey(event.context);
    let byResource = this.pending.get(ctxKey);
    if (!byResource) {
      byResource = new Map();
      this.pending.set(ctxKey, byResource);
    }
    let folds = byResource.get(event.resource);
    if (!folds) {
      folds = [];
      byResource.set(event.resource, folds);
    }
    const now = this.clock.nowMs();
    const version = event.details?.version;
    for (const hit of folds) {
      if (hit.event.action === event.action && hit.event.details?.version === version) {
        hit.count++;
        hit.lastAtMs = now;
        return RESOLVED;
      }
    }
    folds.push({ event, count: 1, firstAtMs: now, lastAtMs: now });
    if (++this.pendingCount >= this.maxKeys) return this.flush();
    if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.windowMs);
      this.timer.unref();
    }
    return RESOLVED;
  }

  private contextKey(c: Context): string {
    let k = this.contextKeys.get(c);
    if (k === undefined) {
      k = `${c.tenantId}\u0000${c.actor.id}\u0000${c.actor.ip ?? ''}\u0000${c.actor.userAgent ?? ''}\u0000${c.correlationId ?? ''}`;
      this.contextKeys.set(c, k);
    }
    return k;
  }

  /** Hands every folded event to the audit log now. */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const batch = [...this.pending.values()].flatMap((byResource) => [...byResource.values()].flat());
    this.pending = new Map();
    this.pendingCount = 0;
    for (const p of batch) {
      try {
        await this.audit.recordRead({
          ...p.event,
          details: {
            ...p.event.details,
            reads: p.count,
            firstReadAt: new Date(p.firstAtMs).toISOString(),
            lastReadAt: new Date(p.lastAtMs).toISOString(),
          },
        });
      } catch (e) {
        this.logger.error(`could not audit ${p.count} read(s) of ${p.event.resource}: ${(e as Error).message}`);
      }
    }
  }

  /** Events folded and not yet handed to the audit log. */
  get pendingEvents(): number {
    return this.pendingCount;
  }

  async onModuleDestroy(): Promise<void> {
    await this.flush();
  }
}
