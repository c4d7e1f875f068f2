import { IncomingMessage, ServerResponse } from 'node:http';
import type { DenySpec } from '../denials';
import type { VaultEvent } from '../events';
import type { FaultSpec } from '../faults';
import type { LifetimeActionsReport } from '../keys/lifetime-actions';
import { readBody, send } from './io';

/** What the `/_emulator/` endpoints act on: one vault's test controls. */
export interface AdminControls {
  health(): object;
  time(): { now: string; offsetMs: number };
  stats(): object;
  /** Faults, denials, stats and events cleared. */
  reset(): void;
  advanceTime(ms: number): Promise<LifetimeActionsReport>;
  runLifetimeActions(): Promise<LifetimeActionsReport>;
  events(): VaultEvent[];
  clearEvents(): void;
  /** Validates and adds the fault (throws on a bad spec); the faults now active. */
  injectFault(spec: FaultSpec): number;
  clearFaults(): void;
  /** Validates and adds the denial (throws on a bad spec); the denials now active. */
  deny(spec: DenySpec): number;
  clearDenials(): void;
}

/**
 * The test controls over HTTP (`/_emulator/health|stats|reset|time|lifetime-actions|events|faults|denials`), for
 * tests and tools in another process. Bad input is a 400 `BadParameter` and changes nothing; an unknown one 404.
 */
export async function handleAdminRequest(req: IncomingMessage, res: ServerResponse, url: URL, vault: AdminControls): Promise<void> {
  const method = (req.method ?? 'GET').toUpperCase();
  const path = url.pathname.replace(/\/+$/, '');
  let raw: Buffer;
  try {
    raw = await readBody(req);
  } catch {
    res.destroy();
    return;
  }
  const bad = (message: string) => send(req, res, 400, { error: { code: 'BadParameter', message } });
  if (path === '/_emulator/health' && method === 'GET') return send(req, res, 200, vault.health());
  if (path === '/_emulator/stats' && method === 'GET') return send(req, res, 200, vault.stats());
  if (path === '/_emulator/reset' && method === 'POST') {
    vault.reset();
    return send(req, res, 204);
  }
  if (path === '/_emulator/time' && method === 'GET') return send(req, res, 200, vault.time());
  if (path === '/_emulator/time' && method === 'POST') {
    let advanceMs: unknown;
    try {
      advanceMs = (JSON.parse(raw.toString('utf8')) as { advanceMs?: unknown } | null)?.advanceMs;
    } catch {
      return bad('The body must be JSON: {"advanceMs": <non-negative integer>}.');
    }
    if (typeof advanceMs !== 'number' || !Number.isSafeInteger(advanceMs) || advanceMs < 0) return bad('"advanceMs" must be a non-negative integer of milliseconds.');
    const report = await vault.advanceTime(advanceMs);
    return send(req, res, 200, { now: vault.time().now, ...report });
  }
  if (path === '/_emulator/lifetime-actions' && method === 'POST') return send(req, res, 200, await vault.runLifetimeActions());
  if (path === '/_emulator/events' && method === 'GET') return send(req, res, 200, { events: vault.events() });
  if (path === '/_emulator/events' && method === 'DELETE') {
    vault.clearEvents();
    return send(req, res, 204);
  }
  if (path === '/_emulator/denials' && method === 'DELETE') {
    vault.clearDenials();
    return send(req, res, 204);
  }
  if (path === '/_emulator/faults' && method === 'DELETE') {
    vault.clearFaults();
    return send(req, res, 204);
  }
  if (path === '/_emulator/faults' && method === 'POST') {
    let spec: unknown;
    try {
      spec = JSON.parse(raw.toString('utf8'));
    } catch {
      return bad('The body must be a JSON FaultSpec.');
    }
    let activeFaults: number;
    try {
      activeFaults = vault.injectFault(spec as FaultSpec);
    } catch (err) {
      return bad((err as Error).message);
    }
    return send(req, res, 201, { activeFaults });
  }
  if (path === '/_emulator/denials' && method === 'POST') {
    let activeDenials: number;
    try {
      activeDenials = vault.deny(JSON.parse(raw.toString('utf8')) as DenySpec);
    } catch (err) {
      return bad(err instanceof SyntaxError ? 'The body must be a JSON DenySpec.' : (err as Error).message);
    }
    return send(req, res, 201, { activeDenials });
  }
  return send(req, res, 404, { error: { code: 'NotFound', message: `No admin endpoint ${method} ${url.pathname}` } });
}
