import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { AuditEventInput, AuditResult, AuditService } from '@app/audit';
import { Clock, describeError } from '@app/common';
import { CREDENTIALS_CLOCK, CREDENTIALS_RESOLVED_OPTIONS } from '../credentials.constants';
import type { ResolvedCredentialsOptions } from '../credentials.options';

const RESOLVED = Promise.resolve();

interface Pending {
  event: AuditEventInput;
  /** The first read's `recordRead`: resolves once its row committed. Repeats wait for it too. */
  first: Promise<void>;
  /** Reads after the first one (which was handed over at once). */
  repeats: number;
  firstRepeatAtMs: number;
  lastRepeatAtMs: number;
}

type Context = AuditEventInput['context'];

/** Events handed over per event-loop turn while flushing: a large hand-over must not stall requests. */
const FLUSH_SLICE = 100;

/**
 * Hands read events to `AuditService.recordRead`, folding repeats: the first successful read of a
 * key (tenant, actor, correlation id, credential, action, version) goes to the audit log at once;
 * identical reads within the next `readAudit.coalesceWindowMs` become ONE more event whose details
 * carry `reads` (how many), `firstReadAt` and `lastReadAt`. Every read is still accounted for; a hot
 * credential read 100k times a second no longer means 100k hash-chained rows, and reads that never
 * repeat (an HTTP request has its own correlation id) are not held back at all.
 *
 * - Failed and denied reads are never folded (they feed suspicious-activity detection at once).
 * - While the audit log is unhealthy the read goes straight to `recordRead`, so fail-closed still
 *   refuses reads.
 * - Durability: the first read of a key resolves once its row has committed (`recordRead`); a repeat
 *   resolves once that same row has committed (and is refused if it failed), so no key is ever served
 *   without a durable row. The repeat COUNT is in memory until the window ends (its row is then
 *   written; also when the module is destroyed): a crash (`kill -9`) loses at most one window of
 *   counts, never a key's row. Making repeats wait for the row carrying their count would hold every
 *   repeat for up to the window. Hosts that need one durable row per read keep the window at 0
 *   (apps/api does).
 */
@Injectable()
export class ReadAuditCoalescer implements OnModuleDestroy {
  private readonly logger = new Logger(ReadAuditCoalescer.name);
  /** Context key → resource → the keys seen this window (one per action + version; usually one). */
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

  /**
   * Resolves once the read's row (a repeat: its key's first row) has committed; rejects when the audit
   * log refuses it — the caller must then not return the value.
   */
  record(event: AuditEventInput): Promise<void> {
    if (this.windowMs === 0 || event.result !== AuditResult.SUCCESS || !this.audit.healthy) {
      return this.audit.recordRead(event);
    }
    // This is the warm read path: map lookups on strings that already exist, no allocation on a repeat.
    const ctxKey = this.contextKey(event.context);
    let byResource = this.pending.get(ctxKey);
    if (!byResource) {
      byResource = new Map();
      this.pending.set(ctxKey, byResource);
    }
    let seen = byResource.get(event.resource);
    if (!seen) {
      seen = [];
      byResource.set(event.resource, seen);
    }
    const version = event.details?.version;
    for (const hit of seen) {
      if (hit.event.action === event.action && hit.event.details?.version === version) {
        const now = this.clock.nowMs();
        if (hit.repeats++ === 0) hit.firstRepeatAtMs = now;
        hit.lastRepeatAtMs = now;
        return hit.first;
      }
    }
    const hit: Pending = { event, first: RESOLVED, repeats: 0, firstRepeatAtMs: 0, lastRepeatAtMs: 0 };
    seen.push(hit);
    // A full window is handed over first, so earlier repeats keep their place in the log.
    if (++this.pendingCount >= this.maxKeys) void this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.windowMs);
      this.timer.unref();
    }
    hit.first = this.audit.recordRead(event);
    return hit.first;
  }

  private contextKey(c: Context): string {
    let k = this.contextKeys.get(c);
    if (k === undefined) {
      k = `${c.tenantId}\u0000${c.actor.id}\u0000${c.actor.ip ?? ''}\u0000${c.actor.userAgent ?? ''}\u0000${c.correlationId ?? ''}`;
      this.contextKeys.set(c, k);
    }
    return k;
  }

  /** Hands every folded repeat to the audit log now, and starts a new window. */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const batch = [...this.pending.values()].flatMap((byResource) => [...byResource.values()].flat()).filter((p) => p.repeats > 0);
    this.pending = new Map();
    this.pendingCount = 0;
    for (let i = 0; i < batch.length; i++) {
      if (i > 0 && i % FLUSH_SLICE === 0) await new Promise((r) => setImmediate(r));
      const p = batch[i];
      try {
        await this.audit.recordRead({
          ...p.event,
          details: {
            ...p.event.details,
            reads: p.repeats,
            firstReadAt: new Date(p.firstRepeatAtMs).toISOString(),
            lastReadAt: new Date(p.lastRepeatAtMs).toISOString(),
          },
        });
      } catch (e) {
        this.logger.error(`could not audit ${p.repeats} read(s) of ${p.event.resource}: ${describeError(e)}`);
      }
    }
  }

  /** Distinct read keys seen in the current window (each may carry folded repeats). */
  get pendingEvents(): number {
    return this.pendingCount;
  }

  async onModuleDestroy(): Promise<void> {
    await this.flush();
  }
}
