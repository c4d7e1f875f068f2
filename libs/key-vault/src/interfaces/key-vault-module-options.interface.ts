import type { TokenCredential } from '@azure/identity';
import type { Registry } from 'prom-client';

/** Azure managed identity (system-assigned, or user-assigned with `clientId`). */
export interface ManagedIdentityCredentialOptions {
  type: 'managed-identity';
  /** Client id of a user-assigned identity. @default system-assigned identity */
  clientId?: string;
}

/** Service principal with a client secret. */
export interface ClientSecretCredentialOptions {
  type: 'client-secret';
  tenantId: string;
  clientId: string;
  clientSecret: string;
}

/** Service principal with a certificate: give exactly one of `certificatePath` or `certificate`. */
export interface ClientCertificateCredentialOptions {
  type: 'client-certificate';
  tenantId: string;
  clientId: string;
  /** Path to a PEM file holding the certificate and its private key. */
  certificatePath?: string;
  /** PEM text holding the certificate and its private key. */
  certificate?: string;
  /** Send the x5c chain (subject name / issuer authentication). @default false */
  sendCertificateChain?: boolean;
}

/** Kubernetes workload identity (federated token file). */
export interface WorkloadIdentityCredentialOptions {
  type: 'workload-identity';
  /** @default the `AZURE_TENANT_ID` the workload-identity webhook injects (read by the SDK) */
  tenantId?: string;
  /** @default the `AZURE_CLIENT_ID` the webhook injects (read by the SDK) */
  clientId?: string;
  /** @default the `AZURE_FEDERATED_TOKEN_FILE` the webhook injects (read by the SDK) */
  tokenFilePath?: string;
}

/** The identity of a logged-in `az` CLI (developer machines). */
export interface AzureCliCredentialOptions {
  type: 'azure-cli';
}

/** `DefaultAzureCredential`: environment, workload identity, managed identity, CLI, ... in order. */
export interface DefaultCredentialOptions {
  type: 'default';
  /** Client id of a user-assigned managed identity. @default system-assigned */
  managedIdentityClientId?: string;
}

/**
 * A fixed bearer token for a LOCAL vault (the emulator). Refused for any non-local vault URL.
 */
export interface StaticCredentialOptions {
  type: 'static';
  /** @default 'credential-vault-dev-token' */
  token?: string;
}

/** Escape hatch for embedding apps that already own a `TokenCredential`. */
export interface TokenCredentialOptions {
  type: 'token-credential';
  credential: TokenCredential;
}

export type KeyVaultCredentialOptions =
  | ManagedIdentityCredentialOptions
  | ClientSecretCredentialOptions
  | ClientCertificateCredentialOptions
  | WorkloadIdentityCredentialOptions
  | AzureCliCredentialOptions
  | DefaultCredentialOptions
  | StaticCredentialOptions
  | TokenCredentialOptions;

/**
 * Trust an extra CA for the vault's TLS certificate. LOCAL vaults only (the emulator's self-signed
 * CA); refused for any other host. Give at most one of the two. The given CA replaces the public CA
 * list for this client only (process-wide trust, e.g. NODE_EXTRA_CA_CERTS, is not touched).
 */
export interface KeyVaultTlsOptions {
  /** PEM text of the CA certificate. */
  caCertPem?: string;
  /** Path to a PEM file of the CA certificate (read once at startup). */
  caCertPath?: string;
}

export interface KeyVaultBreakerOptions {
  /** Consecutive transient failures (5xx, timeouts, connection errors; not 429) that open the breaker. @default 5 */
  consecutiveFailures?: number;
  /** How long the breaker stays open before letting one trial call through (half-open). @default 30000 */
  halfOpenAfterMs?: number;
}

export interface KeyVaultBulkheadOptions {
  /** Concurrent Key Vault calls (a call holds its slot through its retries). @default 64 */
  maxConcurrent?: number;
  /** Calls waiting for a slot; beyond that calls fail with BULKHEAD_FULL. @default 1000 */
  maxQueued?: number;
}

export interface KeyVaultResilienceOptions {
  /** Total attempts per call, first one included (1 = no retry). @default 4 */
  maxAttempts?: number;
  /** First backoff delay; doubles per retry, with jitter. @default 200 */
  initialDelayMs?: number;
  /**
   * Longest backoff delay. A `Retry-After` longer than this ends the retries (the call fails with
   * RATE_LIMITED / SERVICE_UNAVAILABLE carrying `retryAfterMs`) rather than being cut short.
   * @default 16000
   */
  maxDelayMs?: number;
  /** Timeout of one attempt (a delete/recover attempt includes its polling). @default 10000 */
  timeoutMs?: number;
  /** Poll interval of the delete / recover long-running operations. @default 500 */
  pollIntervalMs?: number;
  breaker?: KeyVaultBreakerOptions;
  bulkhead?: KeyVaultBulkheadOptions;
}

export interface KeyVaultMetricsOptions {
  /** Register Prometheus metrics. @default true */
  enabled?: boolean;
  /** Metric name prefix. @default 'credential_vault_keyvault_' */
  prefix?: string;
  /** prom-client registry to register in. @default the prom-client global `register` */
  registry?: Registry;
}

export interface KeyVaultHealthOptions {
  /** The health probe fails (down) after this long. @default 3000 */
  timeoutMs?: number;
  /** A probe slower than this reports `degraded`. @default 1000 */
  degradedAfterMs?: number;
  /**
   * Probe by reading this secret (404 counts as healthy: it proves connectivity and authorisation).
   * Needs only `get` permission. @default list one secret (needs `list` permission)
   */
  probeSecretName?: string;
}

export interface KeyVaultModuleOptions {
  /**
   * The vault's base URL, e.g. `https://myvault.vault.azure.net` — no path, query or fragment.
   * Always https, the local vault (the emulator) too: no Key Vault speaks plain HTTP.
   */
  vaultUrl: string;
  /** How to authenticate to the vault. */
  credential: KeyVaultCredentialOptions;
  /** Trust a custom CA. LOCAL vaults only. @default the public CA list */
  tls?: KeyVaultTlsOptions;
  /**
   * Skip the SDK's check that the bearer challenge's resource matches the vault host (the emulator
   * on localhost needs it). LOCAL vaults only. @default false
   */
  disableChallengeResourceVerification?: boolean;
  resilience?: KeyVaultResilienceOptions;
  metrics?: KeyVaultMetricsOptions;
  health?: KeyVaultHealthOptions;
}

/** Options after validation, with every default applied. */
export interface ResolvedKeyVaultOptions {
  vaultUrl: string;
  /** True for localhost, 127.0.0.0/8, ::1. */
  isLocalVault: boolean;
  credential: KeyVaultCredentialOptions;
  /** PEM text of the extra CA (from `caCertPem` or the file at `caCertPath`). */
  caCertPem?: string;
  disableChallengeResourceVerification: boolean;
  resilience: {
    maxAttempts: number;
    initialDelayMs: number;
    maxDelayMs: number;
    timeoutMs: number;
    pollIntervalMs: number;
    breaker: { consecutiveFailures: number; halfOpenAfterMs: number };
    bulkhead: { maxConcurrent: number; maxQueued: number };
  };
  metrics: { enabled: boolean; prefix: string; registry?: Registry };
  health: { timeoutMs: number; degradedAfterMs: number; probeSecretName?: string };
}

/**
 * For `KeyVaultModule.forRootAsync({ useClass | useExisting })`: implement `create()`, the method every
 * lib module's options factory has. Both members are optional only so that factories written for
 * `createKeyVaultOptions()` still compile; one of them must be there (checked at start).
 */
export interface KeyVaultOptionsFactory {
  create?(): KeyVaultModuleOptions | Promise<KeyVaultModuleOptions>;
  /**
   * @deprecated Name the method `create()`, as for every other lib module. Still called when the factory
   * has no `create()` (with a warning at start); to be removed in the next major version.
   */
  createKeyVaultOptions?(): KeyVaultModuleOptions | Promise<KeyVaultModuleOptions>;
}
