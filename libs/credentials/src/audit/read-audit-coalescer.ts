import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { AuditEventInput, AuditResult, AuditService } from '@app/audit';
import { Clock } from '@app/common';
import { CREDENTIALS_CLOCK, CREDENTIALS_RESOLVED_OPTIONS } from '../credentials.constants';
import type { ResolvedCredentialsOptions } from '../credentials.options';

const RESOLVED = Promise.resolve();

interface Pending {
  event: AuditEventInput;
  count: number;
  firstAt: Date;
  lastAt: Date;
}

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
  private pending = new Map<string, Pending>();
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
    const c = event.context;
    const key = `${c.tenantId}\u0000${c.actor.id}\u0000${c.actor.ip ?? ''}\u0000${c.actor.userAgent ?? ''}\u0000${c.correlationId ?? ''}\u0000${String(event.action)}\u0000${event.resource}\u0000${String(event.details?.version ?? '')}`;
    const now = this.clock.now();
    const hit = this.pending.get(key);
    if (hit) {
      hit.count++;
      hit.lastAt = now;
      return RESOLVED;
    }
    this.pending.set(key, { event, count: 1, firstAt: now, lastAt: now });
    if (this.pending.size >= this.maxKeys) return this.flush();
    if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.windowMs);
      this.timer.unref();
    }
    return RESOLVED;
  }

  /** Hands every folded event to the audit log now. */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const batch = [...this.pending.values()];
    this.pending = new Map();
    for (const p of batch) {
      try {
        await this.audit.recordRead({
          ...p.event,
          details: { ...p.event.details, reads: p.count, firstReadAt: p.firstAt.toISOString(), lastReadAt: p.lastAt.toISOString() },
        });
      } catch (e) {
        this.logger.error(`could not audit ${p.count} read(s) of ${p.event.resource}: ${(e as Error).message}`);
      }
    }
  }

  /** Events folded and not yet handed to the audit log. */
  get pendingEvents(): number {
    return this.pending.size;
  }

  async onModuleDestroy(): Promise<void> {
    await this.flush();
  }
}
