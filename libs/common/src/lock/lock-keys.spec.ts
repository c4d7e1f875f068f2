import { advisoryLockKey, isAdvisoryLockKey } from './advisory-lock-key';
import { ADVISORY_LOCK_NAMESPACES, LOCK_KEY_PREFIXES, LOCK_KEYS, prefixedLockKey } from './lock-keys';

const keys = Object.values(LOCK_KEYS) as string[];
const prefixes = Object.values(LOCK_KEY_PREFIXES) as string[];
const namespaces = Object.values(ADVISORY_LOCK_NAMESPACES) as string[];

describe('lock-key registry', () => {
  it('lists distinct, well-formed keys', () => {
    expect(new Set(keys).size).toBe(keys.length);
    for (const k of keys) expect(k).toMatch(/^[a-z][a-z0-9-]{1,100}$/);
  });

  it('hashes every key to a distinct advisory-lock bigint', () => {
    const ids = keys.map((k) => advisoryLockKey(k, ADVISORY_LOCK_NAMESPACES.distributedLock));
    expect(new Set(ids).size).toBe(keys.length);
    // The default namespace of advisoryLockKey (and PostgresAdvisoryLock) is the registry's.
    expect(keys.map((k) => advisoryLockKey(k))).toEqual(ids);
    // Every key has the form checked before a key is inlined in SQL; nothing else passes.
    for (const id of ids) expect(isAdvisoryLockKey(id)).toBe(true);
    for (const bad of ['', '1.5', "1'; DROP TABLE x; --", '1 ', '123456789012345678901']) expect(isAdvisoryLockKey(bad)).toBe(false);
  });

  it('keeps families apart from fixed keys and from each other', () => {
    for (const p of prefixes) {
      expect(p.endsWith(':')).toBe(true);
      for (const k of keys) expect({ key: k, prefix: p, clash: k.startsWith(p) }).toEqual({ key: k, prefix: p, clash: false });
      for (const q of prefixes) if (p !== q) expect({ p, q, clash: q.startsWith(p) }).toEqual({ p, q, clash: false });
    }
    expect(prefixedLockKey('outboxDispatcherInSchema', 'public')).toBe('cv-outbox-dispatcher:public');
    expect(() => prefixedLockKey('oauthConnectionRefresh', '')).toThrow(TypeError);
  });

  it('keeps advisory namespaces apart, so `ns:name` strings of two namespaces never coincide', () => {
    expect(new Set(namespaces).size).toBe(namespaces.length);
    for (const a of namespaces) for (const b of namespaces) if (a !== b) expect(`${b}:`.startsWith(`${a}:`)).toBe(false);
    // A tenant named like a job key still gets another lock than the job.
    for (const k of keys) expect(advisoryLockKey(k, ADVISORY_LOCK_NAMESPACES.auditChain)).not.toBe(advisoryLockKey(k));
  });
});
