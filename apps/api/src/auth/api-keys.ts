import { createHash, hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { IDENTIFIER_PATTERN } from '@app/common';
import { ALL_SCOPES, UNAUTHENTICATED_TENANT } from './scopes';

/**
 * Static API keys for development and service-to-service use. Only a SHA-256 of the secret part is
 * configured, never the key itself. A key reads `cvk_<id>_<secret>`; clients send it as `X-API-Key`.
 */
export const apiKeyEntrySchema = z.object({
  id: z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'id: letters, digits and dashes, at most 64'),
  tenant: z
    .string()
    .regex(IDENTIFIER_PATTERN, 'tenant: letters, digits and ._:@- , at most 128')
    .refine((t) => t !== UNAUTHENTICATED_TENANT, `tenant: ${UNAUTHENTICATED_TENANT} is reserved (the audit chain of refused authentications)`),
  scopes: z.array(z.enum(ALL_SCOPES as [string, ...string[]], { error: 'is not a scope' })).min(1, 'scopes: at least one'),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'sha256: 64 lowercase hex characters of the secret part'),
});
export type ApiKeyEntry = z.infer<typeof apiKeyEntrySchema>;

const KEY_FORMAT = /^cvk_([A-Za-z0-9-]{1,64})_([A-Za-z0-9_-]{20,200})$/;

export function sha256Hex(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

/** Generates a new key and the configuration entry that accepts it (the key itself is shown once). */
export function generateApiKey(id: string, tenant: string, scopes: string[]): { key: string; entry: ApiKeyEntry } {
  const secret = randomBytes(32).toString('base64url');
  const parsed = apiKeyEntrySchema.safeParse({ id, tenant, scopes, sha256: sha256Hex(secret) });
  if (!parsed.success) {
    // One line per problem, named by field (scopes by position), instead of the schema's raw report.
    const problems = parsed.error.issues.map((i) => (i.message.startsWith(`${String(i.path[0])}:`) ? i.message : `${i.path.join('.')}: ${i.message}`));
    throw Object.assign(new Error(`Invalid API key settings:\n  - ${problems.join('\n  - ')}\n(scopes: ${ALL_SCOPES.join(', ')})`), { name: 'ApiKeyInputError' });
  }
  const entry = parsed.data;
  return { key: `cvk_${id}_${secret}`, entry };
}

export class ApiKeyVerifier {
  /**
   * Each id's entries with their configured digests as bytes (decoded once, not per request). An id has several
   * while a rotation overlaps (the new key's entry added before the old one is removed); all name one tenant (config-rules).
   */
  private readonly byId = new Map<string, Array<{ entry: ApiKeyEntry; expected: Buffer }>>();

  constructor(entries: ApiKeyEntry[]) {
    for (const e of entries) {
      const known = this.byId.get(e.id) ?? [];
      known.push({ entry: e, expected: Buffer.from(e.sha256, 'hex') });
      this.byId.set(e.id, known);
    }
  }

  get size(): number {
    return this.byId.size;
  }

  /** The matching entry, or undefined. Constant-time on the secret (each of the id's entries is compared). */
  verify(key: string): ApiKeyEntry | undefined {
    const m = KEY_FORMAT.exec(key);
    if (!m) return undefined;
    const known = this.byId.get(m[1]);
    if (!known) return undefined;
    // One-shot digest: no Hash object per request (about a third of this call with createHash, measured).
    const given = hash('sha256', m[2], 'buffer');
    let match: ApiKeyEntry | undefined;
    for (const k of known) if (timingSafeEqual(given, k.expected)) match = k.entry;
    return match;
  }
}
