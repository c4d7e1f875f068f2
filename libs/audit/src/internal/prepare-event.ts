import type { Clock } from '@app/common';
import { AuditInvalidEventError } from '../errors/audit.errors';
import { AuditEventInput, AuditResult } from '../interfaces/audit-event.interface';
import type { HashableEntry } from './canonical';
import { sanitiseDetails, storable } from './sanitize-details';

/** A validated, sanitised event waiting for its place in the chain. */
export type PreparedEvent = Omit<HashableEntry, 'id' | 'sequence' | 'previousHash' | 'result'> & { result: AuditResult };

/** Every stored action matches it (a query's action filter too: no other name can match a row). */
export const ACTION_NAME = /^[a-z][a-z0-9_.:-]{0,63}$/;
export const RESULTS = new Set<string>(Object.values(AuditResult));
/** The input takes a result as its string value too (the same string): a known one is the member. */
export const isResult = (r: unknown): r is AuditResult => RESULTS.has(r as string);

/**
 * Validates `event` (throws `AuditInvalidEventError`) and turns it into what is stored: text made
 * storable and clipped, details sanitised. `redacted` names the details members that were dropped.
 */
export function prepareEvent(event: AuditEventInput, clock: Clock): { prepared: PreparedEvent; redacted: string[] } {
  const bad = (what: string) => new AuditInvalidEventError(`Invalid audit event: ${what}`);
  if (!event || typeof event !== 'object') throw bad('event is required');
  const { action, context, resource, result } = event;
  if (typeof action !== 'string' || !ACTION_NAME.test(action)) throw bad(`action must match ${ACTION_NAME.source}`);
  if (!context || typeof context.tenantId !== 'string' || !context.tenantId || context.tenantId.length > 128) {
    throw bad('context.tenantId must be a non-empty string of at most 128 characters');
  }
  if (!context.actor || typeof context.actor.id !== 'string' || !context.actor.id || context.actor.id.length > 256) {
    throw bad('context.actor.id must be a non-empty string of at most 256 characters');
  }
  if (typeof resource !== 'string' || !resource || resource.length > 512) {
    throw bad('resource must be a non-empty string of at most 512 characters');
  }
  if (!isResult(result)) throw bad(`result must be one of ${[...RESULTS].join(', ')}`);
  if (event.durationMs !== undefined && (!Number.isFinite(event.durationMs) || event.durationMs < 0)) {
    throw bad('durationMs must be a finite number ≥ 0');
  }
  const { details, redacted } = sanitiseDetails(event.details);
  const prepared: PreparedEvent = {
    tenantId: storable(context.tenantId),
    occurredAt: clock.now(),
    action,
    resource: storable(resource),
    actorId: storable(context.actor.id),
    actorIp: clip(context.actor.ip, 64),
    userAgent: clip(context.actor.userAgent, 512),
    result,
    errorCode: event.errorCode === undefined || event.errorCode === null ? null : clip(String(event.errorCode), 64),
    durationMs: event.durationMs === undefined ? null : Math.min(Math.round(event.durationMs), 2_147_483_647),
    correlationId: clip(context.correlationId, 128),
    details,
  };
  return { prepared, redacted };
}

function clip(v: string | undefined | null, max: number): string | null {
  if (v === undefined || v === null || v === '') return null;
  return storable(v.length > max ? v.slice(0, max) : v);
}

/** Events by tenant (each tenant's in the order given): one chain append per tenant. */
export function groupByTenant(events: PreparedEvent[]): Map<string, PreparedEvent[]> {
  const byTenant = new Map<string, PreparedEvent[]>();
  for (const e of events) {
    const list = byTenant.get(e.tenantId);
    if (list) list.push(e);
    else byTenant.set(e.tenantId, [e]);
  }
  return byTenant;
}
