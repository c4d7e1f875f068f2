import { createHash } from 'node:crypto';
import { ADVISORY_LOCK_NAMESPACES } from './lock-keys';

/**
 * Maps a lock name to the signed 64-bit integer PostgreSQL advisory-lock functions take: the first
 * 8 bytes of SHA-256(`namespace:name`). Returned as a decimal string (pass it as `$1::bigint`);
 * JavaScript numbers cannot hold 64 bits. Different namespaces keep unrelated users apart.
 */
export function advisoryLockKey(name: string, namespace: string = ADVISORY_LOCK_NAMESPACES.distributedLock): string {
  return createHash('sha256').update(`${namespace}:${name}`, 'utf8').digest().readBigInt64BE(0).toString();
}

/** Whether `key` has the form `advisoryLockKey` returns (a decimal integer): checked before it is inlined in SQL. */
export function isAdvisoryLockKey(key: string): boolean {
  return /^-?\d{1,20}$/.test(key);
}
