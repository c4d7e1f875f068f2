import { randomBytes } from 'node:crypto';
import { generateApiKey } from '../../apps/api/src/auth/api-keys';

export interface ApiResponse {
  status: number;
  text: string;
  body: any;
  headers: Headers;
}

/** A client of one host as one API key: JSON in, JSON out, a timeout so a hung host fails the part, not the run. */
export function apiClient(baseUrl: string, apiKey: string, timeoutMs = 30_000) {
  return async (method: string, path: string, body?: unknown): Promise<ApiResponse> => {
    const res = await fetch(`${baseUrl}${path}`, {
      method,
      headers: { 'x-api-key': apiKey, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    return { status: res.status, text, body: parsed, headers: res.headers };
  };
}
export type ApiClient = ReturnType<typeof apiClient>;

/** Every scope of the host: the parts exercise every route. */
export const ALL_SCOPES = ['admin'];

/** An API key of the host for `tenant`, with its AUTH_API_KEYS entry. */
export const tenantKey = (name: string, tenant: string) => generateApiKey(name, tenant, ALL_SCOPES);

/** A value nobody else stores: a marker to search for afterwards (plain and base64). */
export function marker(tag = 'rel'): string {
  return `${tag}M${randomBytes(12).toString('hex')}`;
}

/** Environment shared by the parts' hosts: no background job interferes with what a part counts. */
export const QUIET_HOST_ENV: Record<string, string> = {
  RATE_LIMIT_PER_MINUTE: '1000000',
  OAUTH_PROACTIVE_ENABLED: 'false',
  AUDIT_ANCHOR_ENABLED: 'false',
  AUDIT_RETENTION_ENABLED: 'false',
  NOTIFICATIONS_WEBHOOK_ENABLED: 'false',
};

/** The documented error shape: statusCode, error, message (string or strings), requestId. */
export function isErrorShape(status: number, body: any): boolean {
  return (
    !!body &&
    body.statusCode === status &&
    typeof body.error === 'string' &&
    (typeof body.message === 'string' || (Array.isArray(body.message) && body.message.every((m: unknown) => typeof m === 'string'))) &&
    typeof body.requestId === 'string'
  );
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `fn` over `count` indexes, at most `limit` at a time (set-up and check-up work that needs no order). */
export async function forEachLimited(count: number, limit: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, count) }, async () => {
      for (let i = next++; i < count; i = next++) await fn(i);
    }),
  );
}
