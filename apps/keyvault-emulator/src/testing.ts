import { CryptographyClient, KeyClient, KeyVaultKey } from '@azure/keyvault-keys';
import { SecretClient } from '@azure/keyvault-secrets';
import { request } from 'node:https';
import { emulatorCredential } from './credential';

/** Test helpers (used by the emulator's own integration specs; handy for other suites too). */
export interface EmulatorLike {
  vaultUrl: string;
  caCertPem: string;
}

/**
 * A SecretClient for the emulator: the official client, unmodified except for
 * `disableChallengeResourceVerification` and trusting the emulator CA via `tlsOptions.ca`.
 */
export function emulatorSecretClient(
  emu: EmulatorLike,
  opts: EmulatorClientOptions = {},
): SecretClient {
  return new SecretClient(emu.vaultUrl, emulatorCredential(opts.token), {
    ...clientOptions(emu, opts),
    ...(opts.serviceVersion ? { serviceVersion: opts.serviceVersion as '7.6' } : {}),
  });
}

export interface EmulatorClientOptions {
  token?: string;
  maxRetries?: number;
  serviceVersion?: string;
}

/** The pipeline options every official Key Vault client needs against the emulator. */
function clientOptions(emu: EmulatorLike, opts: EmulatorClientOptions) {
  return {
    disableChallengeResourceVerification: true,
    tlsOptions: { ca: emu.caCertPem },
    retryOptions: { maxRetries: opts.maxRetries ?? 3, retryDelayInMs: 20, maxRetryDelayInMs: 200 },
  };
}

/** A KeyClient (`@azure/keyvault-keys`) for the emulator, unmodified but for the CA and the challenge check. */
export function emulatorKeyClient(emu: EmulatorLike, opts: EmulatorClientOptions = {}): KeyClient {
  return new KeyClient(emu.vaultUrl, emulatorCredential(opts.token), {
    ...clientOptions(emu, opts),
    ...(opts.serviceVersion ? { serviceVersion: opts.serviceVersion as '7.6' } : {}),
  });
}

/**
 * A CryptographyClient for a key of the emulator, from its id (the client GETs the key first) or
 * from a KeyVaultKey. Like against Azure, it verifies, encrypts and wraps locally when it holds
 * the public key and the key's key_ops allow it; sign, decrypt and unwrap always go to the vault.
 */
export function emulatorCryptographyClient(emu: EmulatorLike, keyIdOrKey: string | KeyVaultKey, opts: EmulatorClientOptions = {}): CryptographyClient {
  return new CryptographyClient(keyIdOrKey, emulatorCredential(opts.token), {
    ...clientOptions(emu, opts),
    ...(opts.serviceVersion ? { serviceVersion: opts.serviceVersion as '7.6' } : {}),
  });
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

/** One raw HTTPS request to the emulator (no SDK), trusting its CA. Rejects on a socket error. */
export function rawRequest(
  emu: EmulatorLike,
  method: string,
  path: string,
  opts: { token?: string | null; body?: unknown; headers?: Record<string, string> } = {},
): Promise<RawResponse> {
  const url = new URL(path, emu.vaultUrl);
  const body = opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  const token = opts.token === undefined ? 'test-token' : opts.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, ca: emu.caCertPem, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The fields of the SDK's RestError that tests look at. */
export interface RestErrorLike extends Error {
  statusCode?: number;
  code?: string;
  details?: any;
  response?: { headers: { get(name: string): string | undefined } };
}

/** Awaits a call that must fail with an HTTP error from the SDK and returns that error. */
export async function restError(p: Promise<unknown>): Promise<RestErrorLike> {
  try {
    await p;
  } catch (err) {
    if (err instanceof Error && err.name === 'RestError') return err as RestErrorLike;
    throw err;
  }
  throw new Error('expected the call to fail with a RestError');
}
