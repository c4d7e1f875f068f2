import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { describeProblems, resolveOptions, whenFieldsParsed } from '@app/common';
import { z } from 'zod';
import { KeyVaultErrorCode } from './errors/key-vault-error-code';
import { KeyVaultError } from './errors/key-vault.error';
import type {
  KeyVaultCredentialOptions,
  KeyVaultModuleOptions,
  ResolvedKeyVaultOptions,
} from './interfaces/key-vault-module-options.interface';

export const DEFAULT_METRICS_PREFIX = 'credential_vault_keyvault_';
export const DEFAULT_STATIC_TOKEN = 'credential-vault-dev-token';

/** localhost (and *.localhost), 127.0.0.0/8 and ::1 — the only hosts the development switches accept. */
export function isLocalHost(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(h);
  return false;
}

const nonEmpty = (what: string) => z.string({ error: `${what} is required` }).regex(/\S/, `${what} must not be empty`);
const positiveInt = z.int().positive();

const credentialSchema = z.discriminatedUnion(
  'type',
  [
    z.object({ type: z.literal('managed-identity'), clientId: nonEmpty('clientId').optional() }).strict(),
    z
      .object({
        type: z.literal('client-secret'),
        tenantId: nonEmpty('tenantId'),
        clientId: nonEmpty('clientId'),
        clientSecret: nonEmpty('clientSecret'),
      })
      .strict(),
    z
      .object({
        type: z.literal('client-certificate'),
        tenantId: nonEmpty('tenantId'),
        clientId: nonEmpty('clientId'),
        certificatePath: nonEmpty('certificatePath').optional(),
        certificate: nonEmpty('certificate').optional(),
        sendCertificateChain: z.boolean().optional(),
      })
      .strict()
      .refine((c) => (c.certificatePath === undefined) !== (c.certificate === undefined), {
        message: 'give exactly one of certificatePath (a PEM file) or certificate (PEM text)',
        ...whenFieldsParsed('certificatePath', 'certificate'),
      }),
    z
      .object({
        type: z.literal('workload-identity'),
        tenantId: nonEmpty('tenantId').optional(),
        clientId: nonEmpty('clientId').optional(),
        tokenFilePath: nonEmpty('tokenFilePath').optional(),
      })
      .strict(),
    z.object({ type: z.literal('azure-cli') }).strict(),
    z.object({ type: z.literal('default'), managedIdentityClientId: nonEmpty('managedIdentityClientId').optional() }).strict(),
    z.object({ type: z.literal('static'), token: nonEmpty('token').optional() }).strict(),
    z
      .object({
        type: z.literal('token-credential'),
        credential: z.custom<{ getToken: unknown }>(
          (v) => typeof v === 'object' && v !== null && typeof (v as { getToken?: unknown }).getToken === 'function',
          'credential must be a TokenCredential (an object with getToken())',
        ),
      })
      .strict(),
  ],
  {
    error: () =>
      'credential.type must be one of managed-identity, client-secret, client-certificate, workload-identity, azure-cli, default, static, token-credential',
  },
);

function parseUrl(v: string): URL | undefined {
  try {
    return new URL(v);
  } catch {
    return undefined;
  }
}

/** What is wrong with a vaultUrl, never quoting it (it may hold credentials), or undefined when it is fine. */
function vaultUrlProblem(v: string): string | undefined {
  const url = parseUrl(v);
  if (!url) return 'vaultUrl is not a URL (expected https://<name>.vault.azure.net/)';
  // The local vault is HTTPS too: over http:// the SDK's first call met a TLS port and failed as 'retry later'.
  if (url.protocol !== 'https:') return 'vaultUrl must be an https:// URL: Key Vault, Azure\'s and the local one, speaks only HTTPS';
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash || url.username || url.password) {
    return "vaultUrl must be the vault's base URL, https://<name>.vault.azure.net/, with no credentials, path, query or fragment (secret ids break otherwise)";
  }
  return undefined;
}

/** Reads `tls.caCertPath` (once) into `caCertPem` and checks the CA is PEM. Names the problem, never the path or content. */
function readCaCert<T extends { caCertPem?: string; caCertPath?: string }>(t: T, ctx: z.core.$RefinementCtx<T>): T {
  let caCertPem = t.caCertPem;
  if (t.caCertPath !== undefined) {
    try {
      caCertPem = readFileSync(t.caCertPath, 'utf8');
    } catch (e) {
      ctx.addIssue({
        code: 'custom',
        path: ['caCertPath'],
        message: `tls.caCertPath cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
      });
      return t;
    }
  }
  if (caCertPem !== undefined && !caCertPem.includes('-----BEGIN CERTIFICATE-----')) {
    ctx.addIssue({
      code: 'custom',
      path: [t.caCertPath !== undefined ? 'caCertPath' : 'caCertPem'],
      message: 'tls CA is not a PEM certificate (expected "-----BEGIN CERTIFICATE-----")',
    });
  }
  return { ...t, caCertPem };
}

const optionsSchema = z
  .object({
    vaultUrl: z
      .string({ error: 'vaultUrl is required (e.g. https://myvault.vault.azure.net)' })
      .min(1, 'vaultUrl is required')
      .superRefine((v, ctx) => {
        const problem = vaultUrlProblem(v);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      }),
    credential: credentialSchema,
    tls: z
      .object({ caCertPem: nonEmpty('tls.caCertPem').optional(), caCertPath: nonEmpty('tls.caCertPath').optional() })
      .strict()
      .refine((t) => !(t.caCertPem !== undefined && t.caCertPath !== undefined), {
        message: 'give at most one of tls.caCertPem or tls.caCertPath',
      })
      .transform(readCaCert)
      .optional(),
    disableChallengeResourceVerification: z.boolean().default(false),
    resilience: z
      .object({
        maxAttempts: positiveInt.max(10).default(4),
        initialDelayMs: z.int().min(0).default(200),
        maxDelayMs: z.int().min(0).default(16_000),
        timeoutMs: positiveInt.default(10_000),
        pollIntervalMs: positiveInt.default(500),
        breaker: z
          .object({ consecutiveFailures: positiveInt.default(5), halfOpenAfterMs: positiveInt.default(30_000) })
          .strict()
          .prefault({}),
        bulkhead: z
          .object({ maxConcurrent: positiveInt.default(64), maxQueued: z.int().min(0).default(1000) })
          .strict()
          .prefault({}),
      })
      .strict()
      .refine((r) => r.maxDelayMs >= r.initialDelayMs, { message: 'resilience.maxDelayMs must be >= initialDelayMs' })
      .prefault({}),
    metrics: z
      .object({
        enabled: z.boolean().default(true),
        prefix: z
          .string()
          .regex(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/, 'metrics.prefix must be a valid Prometheus name prefix ([a-zA-Z_:][a-zA-Z0-9_:]*)')
          .default(DEFAULT_METRICS_PREFIX),
        registry: z
          .custom<object>(
            (v) => typeof v === 'object' && v !== null && typeof (v as { getSingleMetric?: unknown }).getSingleMetric === 'function',
            'metrics.registry must be a prom-client Registry',
          )
          .optional(),
      })
      .strict()
      .prefault({}),
    health: z
      .object({
        timeoutMs: positiveInt.default(3000),
        degradedAfterMs: positiveInt.default(1000),
        probeSecretName: z
          .string()
          .regex(/^[0-9a-zA-Z-]{1,127}$/, 'health.probeSecretName must be a valid secret name (1-127 of 0-9a-zA-Z-)')
          .optional(),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((o, ctx) => {
    // vaultUrl and tls are read by hand (a string vaultUrl, the keys tls holds): a problem of their own
    // (a path in the URL, an unreadable CA file) must not hide this one.
    const rawUrl: unknown = o.vaultUrl;
    const url = typeof rawUrl === 'string' ? parseUrl(rawUrl) : undefined;
    if (!url || isLocalHost(url.hostname)) return;
    const tls = (typeof o.tls === 'object' ? o.tls : undefined) as { caCertPem?: unknown; caCertPath?: unknown } | null | undefined;
    const localOnly: string[] = [];
    if (tls && (tls.caCertPem !== undefined || tls.caCertPath !== undefined)) localOnly.push('tls (custom CA trust)');
    if (o.disableChallengeResourceVerification) localOnly.push('disableChallengeResourceVerification');
    if (o.credential.type === 'static') localOnly.push("credential type 'static'");
    if (localOnly.length) {
      ctx.addIssue({
        code: 'custom',
        message:
          `${localOnly.join(', ')} ${localOnly.length > 1 ? 'are' : 'is'} accepted only for a local vault (localhost, 127.0.0.0/8, ::1), ` +
          'but the vaultUrl host is not local. Use a real credential and the public CA list for Azure.',
      });
    }
  }, whenFieldsParsed('disableChallengeResourceVerification', 'credential.type'));

function configError(message: string): KeyVaultError {
  return new KeyVaultError(KeyVaultErrorCode.CONFIGURATION, `Invalid KeyVaultModule options: ${message}`, {
    operation: 'configuration',
  });
}

/**
 * Validates the module options once and applies every default. Throws a CONFIGURATION
 * `KeyVaultError` whose message lists every problem (never a value: vaultUrl may hold credentials).
 * Reads `tls.caCertPath` (once).
 */
export function resolveKeyVaultOptions(raw: KeyVaultModuleOptions): ResolvedKeyVaultOptions {
  const o = resolveOptions(optionsSchema, raw, (problems) => configError(`\n  - ${describeProblems(problems).join('\n  - ')}`));

  const url = new URL(o.vaultUrl);
  return {
    vaultUrl: url.origin,
    isLocalVault: isLocalHost(url.hostname),
    credential: o.credential as KeyVaultCredentialOptions,
    caCertPem: o.tls?.caCertPem,
    disableChallengeResourceVerification: o.disableChallengeResourceVerification,
    resilience: o.resilience,
    metrics: { enabled: o.metrics.enabled, prefix: o.metrics.prefix, registry: raw.metrics?.registry },
    health: o.health,
  };
}
