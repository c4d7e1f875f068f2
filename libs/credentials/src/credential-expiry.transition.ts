import { Logger } from '@nestjs/common';
import { AuditAction, AuditResult, type AuditService } from '@app/audit';
import { systemContext, type Clock, type OperationContext, type Outbox, type OutboxPayload, type TransactionRunner } from '@app/common';
import type { CredentialCache } from './cache/credential-cache';
import { CredentialStatus } from './credential-type';
import type { CredentialEntity } from './entities/credential.entity';
import { cacheKey, detailsOf } from './internal/credential-view';
import type { CredentialRepository } from './persistence/credential.repository';

/**
 * The outbox event of a credential whose value expired: raised once per credential version, by the
 * transition below, whoever noticed first (a refused read or the rotation lib's expiry monitor).
 * Payload: ids and metadata (`CredentialExpiredPayload`), never a value. Raised even with
 * `emitEvents: false`: expiry notifications depend on it.
 */
export const CREDENTIAL_EXPIRED_EVENT = 'credential.expired';

/** The actor of a transition noticed by a read (the reader's own actor triggered it, but no one asked for it). */
export const CREDENTIAL_EXPIRY_ACTOR = 'credential-expiry';

export interface CredentialExpiredPayload extends OutboxPayload {
  credentialId: string;
  tenantId: string;
  integrationId: string;
  connectionId: string;
  type: string;
  version: number;
  rowVersion: number;
  expiresAt: string;
  /** What noticed it: `read` (a refused read) or the job's name. */
  trigger: string;
  actorId: string;
  /** What the reader of a notification should do, in words. */
  action: string;
  occurredAt: string;
}

export interface ExpiryTransitionResult {
  /** True when this call changed the status (and added the event, whose id is `eventId`). */
  marked: boolean;
  eventId: string | null;
  /** The credential's stored status after the call (`expired` when this call or an earlier one marked it). */
  status: CredentialStatus;
  /** The credential version the status speaks of. */
  version: number;
}

export interface ExpiryTransitionDeps {
  runner: TransactionRunner;
  outbox: Outbox;
  rows: CredentialRepository;
  audit: AuditService;
  cache: CredentialCache;
  clock: Clock;
}

/** A lost compare-and-set is re-read and retried this often (another writer moved `row_version` for something else). */
const ATTEMPTS = 3;
/** Keys remembered as settled in this process (bounds the memory of a long-running replica). */
const MAX_SETTLED = 10_000;

/**
 * `active` → `expired` for a credential whose `expiresAt` has passed, ONCE per credential version:
 * a compare-and-set on `row_version` (only from `active`), the audit row and the `credential.expired`
 * outbox event in one transaction; after commit the cache entry is dropped, so the next read sees the
 * stored status and does no more work. Concurrent callers — 20 reads on one replica, two replicas,
 * the expiry monitor — race on the compare-and-set; exactly one commits the change, the others find
 * the status already `expired` and add nothing. Joins the caller's transaction (the monitor records
 * its own bookkeeping in the same one).
 *
 * Not a Nest provider of its own (CredentialsModule's provider list belongs to the module): the
 * reader and the scanner each build one from their injected parts; the database decides "once".
 */
export class CredentialExpiryTransition {
  private readonly logger = new Logger(CredentialExpiryTransition.name);
  /** Per credential, the transition this process has in flight (concurrent refused reads share it). */
  private readonly inFlight = new Map<string, Promise<ExpiryTransitionResult>>();
  /** `tenant/id@rowVersion` seen settled: a stale cache entry on this replica costs no more queries. */
  private readonly settled = new Set<string>();

  constructor(private readonly deps: ExpiryTransitionDeps) {}

  /** True when a read of `row` is refused only because its expiry passed while it is still `active`. */
  due(row: Pick<CredentialEntity, 'status' | 'expiresAt'>, nowMs: number): boolean {
    return row.status === CredentialStatus.ACTIVE && row.expiresAt !== null && row.expiresAt.getTime() <= nowMs;
  }

  /**
   * From a refused read of `row` (possibly a cached copy). Never throws: the read answers EXPIRED
   * whatever happens here, and a failed transition is done by the next read or the monitor. Inside a
   * caller's transaction it runs after that commits (a failure must not doom the caller's work).
   */
  async fromRead(row: CredentialEntity, ctx: OperationContext): Promise<void> {
    const key = `${cacheKey(row.tenantId, row.id)}@${row.rowVersion}`;
    if (this.settled.has(key)) return;
    const work = () =>
      this.single(row.tenantId, row.id, () => this.expire(row.tenantId, row.id, 'read', ctx.correlationId))
        .then(() => this.remember(key))
        .catch((e: unknown) => this.logger.warn(`could not mark credential ${row.id} (tenant ${row.tenantId}) expired: ${(e as Error)?.name ?? 'Error'}`));
    if (this.deps.runner.inTransaction()) {
      this.deps.runner.afterCommit(work);
      return;
    }
    await work();
  }

  /**
   * Marks the credential expired if it is `active` and past its expiry (re-read from the database).
   * `trigger` names who noticed (`read` or a job name), also the system actor of the change.
   */
  async expire(tenantId: string, id: string, trigger: string, correlationId?: string): Promise<ExpiryTransitionResult> {
    const { runner, rows, clock } = this.deps;
    for (let attempt = 1; ; attempt++) {
      const row = await rows.findById(tenantId, id);
      if (!row || row.status === CredentialStatus.DELETED) return { marked: false, eventId: null, status: CredentialStatus.DELETED, version: row?.currentVersion ?? 0 };
      const now = clock.now();
      if (!this.due(row, now.getTime())) return { marked: false, eventId: null, status: row.status, version: row.currentVersion };
      const ctx = systemContext(tenantId, trigger === 'read' ? CREDENTIAL_EXPIRY_ACTOR : trigger, correlationId);
      const next: CredentialEntity = { ...row, status: CredentialStatus.EXPIRED, rowVersion: row.rowVersion + 1, updatedAt: now, updatedBy: ctx.actor.id };
      const eventId = await runner.run(async () => {
        if (!(await rows.compareAndSet(row, next))) return null;
        await this.deps.audit.record({
          action: AuditAction.UPDATE_METADATA,
          context: ctx,
          resource: row.id,
          result: AuditResult.SUCCESS,
          details: { ...detailsOf(row), changed: ['status'], status: CredentialStatus.EXPIRED, version: row.currentVersion, trigger },
        });
        const id = await this.deps.outbox.add({ name: CREDENTIAL_EXPIRED_EVENT, tenantId, payload: expiredPayload(next, trigger, ctx.actor.id, now) });
        runner.afterCommit(() => this.deps.cache.invalidate(cacheKey(tenantId, row.id)));
        return id;
      });
      if (eventId !== null) return { marked: true, eventId, status: CredentialStatus.EXPIRED, version: row.currentVersion };
      // Lost the compare-and-set: usually to another transition (the re-read then finds `expired`).
      if (attempt >= ATTEMPTS) {
        const current = await rows.findById(tenantId, id);
        return { marked: false, eventId: null, status: current?.status ?? CredentialStatus.DELETED, version: current?.currentVersion ?? row.currentVersion };
      }
    }
  }

  private single(tenantId: string, id: string, work: () => Promise<ExpiryTransitionResult>): Promise<ExpiryTransitionResult> {
    const key = cacheKey(tenantId, id);
    const running = this.inFlight.get(key);
    if (running) return running;
    const p = work().finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, p);
    return p;
  }

  private remember(key: string): void {
    if (this.settled.size >= MAX_SETTLED) this.settled.clear();
    this.settled.add(key);
  }
}

function expiredPayload(row: CredentialEntity, trigger: string, actorId: string, now: Date): CredentialExpiredPayload {
  return {
    credentialId: row.id,
    tenantId: row.tenantId,
    integrationId: row.integrationId,
    connectionId: row.connectionId,
    type: row.type,
    version: row.currentVersion,
    rowVersion: row.rowVersion,
    expiresAt: (row.expiresAt as Date).toISOString(),
    trigger,
    actorId,
    action: 'Rotate the credential: its value has expired and is no longer served.',
    occurredAt: now.toISOString(),
  };
}
