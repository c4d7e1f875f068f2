import { errors } from '../errors';

/** The newest api-version the emulator claims to support. */
export const LATEST_API_VERSION = '2026-04-01';
const OLDEST_DATED = '2025-07-01';
/** The data-plane version before 7.0 that the service still answers (the Python SDK's ApiVersion.V2016_10_01). */
const LEGACY_API_VERSION = '2016-10-01';

/**
 * Accepts the secrets api-versions 2016-10-01, 7.0 … 7.6 (with `-preview[.N]` suffixes) and dated versions from
 * 2025-07-01 through 2026-04-01 (optionally `-preview`). Anything else is a 400 BadParameter as in Azure.
 */
export function isSupportedApiVersion(v: string): boolean {
  if (/^7\.[0-6](-preview(\.\d+)?)?$/.test(v) || v === LEGACY_API_VERSION) return true;
  const m = /^(\d{4}-\d{2}-\d{2})(-preview)?$/.exec(v);
  if (!m) return false;
  const day = m[1];
  return day >= OLDEST_DATED && day <= LATEST_API_VERSION && !Number.isNaN(Date.parse(day));
}

/** The dated api-versions from 2025-07-01 on, which add parameters 7.x (and 2016-10-01) do not have. */
export function isDatedApiVersion(v: string): boolean {
  return /^\d{4}-\d{2}-\d{2}/.test(v) && v.slice(0, 10) >= OLDEST_DATED;
}

/**
 * `recoverableDays` came with 7.1: the service leaves it out of the attributes it answers at 2016-10-01 and 7.0 (recorded,
 * secrets and keys), `recoveryLevel` alone.
 */
export function hasRecoverableDays(v: string): boolean {
  return v !== LEGACY_API_VERSION && !/^7\.0(-|$)/.test(v);
}

/**
 * Exportable keys and their release policies came with 7.3-preview; the service refuses the exportable attribute
 * before it ("…only supported with premium vaults and API version >= '7.3-preview'").
 */
export function definesKeyRelease(v: string): boolean {
  if (v === LEGACY_API_VERSION) return false;
  const minor = /^7\.(\d)/.exec(v);
  return minor ? Number(minor[1]) >= 3 : true;
}

export function assertApiVersion(v: string | null): string {
  if (v === null || v === '') throw errors.badParameter('The api-version query parameter (?api-version=) is required for all requests.');
  if (!isSupportedApiVersion(v)) {
    throw errors.badParameter(`The specified version (${v}) is not recognized. Consider using the latest supported version (${LATEST_API_VERSION}).`);
  }
  return v;
}
