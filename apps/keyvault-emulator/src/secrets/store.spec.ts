import { KeyVaultHttpError } from '../errors';
import { SecretStore } from './store';

function store(opts: Partial<ConstructorParameters<typeof SecretStore>[0]> = {}) {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const s = new SecretStore({
    softDeleteRetentionDays: 7,
    purgeProtection: false,
    operationDelayMs: 0,
    vaultName: 'test',
    now: () => now,
    ...opts,
  });
  return { s, advance: (ms: number) => (now += ms) };
}

const status = (fn: () => unknown) => {
  try {
    fn();
    return 200;
  } catch (e) {
    return (e as KeyVaultHttpError).status;
  }
};

describe('SecretStore', () => {
  it('purges soft-deleted secrets automatically once the retention has passed', () => {
    const { s, advance } = store();
    s.set('old', { value: 'v', attributes: {} });
    s.delete('old');
    advance(7 * 86_400_000 - 1000);
    expect(s.getDeleted('old').name).toBe('old');
    advance(1000);
    expect(s.purgeExpired()).toBe(1);
    expect(status(() => s.getDeleted('old'))).toBe(404);
    // the name is free again
    expect(s.set('old', { value: 'new', attributes: {} }).version.value).toBe('new');
  });

  it('makes a delete and a recover visible only after operationDelayMs', () => {
    const { s, advance } = store({ operationDelayMs: 500 });
    s.set('x', { value: 'v', attributes: {} });
    s.delete('x');
    expect(status(() => s.get('x'))).toBe(404);
    expect(status(() => s.getDeleted('x'))).toBe(404);
    expect(status(() => s.set('x', { value: 'v2', attributes: {} }))).toBe(409);
    advance(500);
    expect(s.getDeleted('x').name).toBe('x');
    s.recover('x');
    expect(status(() => s.get('x'))).toBe(404);
    expect(s.listActive()).toHaveLength(0);
    advance(500);
    expect(s.get('x').version.value).toBe('v');
  });

  it('keeps versions immutable: a new set adds a version, update changes only attributes', () => {
    const { s } = store();
    const a = s.set('k', { value: '1', tags: { t: '1' }, attributes: {} });
    const b = s.set('K', { value: '2', attributes: { enabled: false } });
    expect(s.listVersions('k').versions).toHaveLength(2);
    expect(status(() => s.get('k', undefined, { requireEnabled: true }))).toBe(403);
    expect(s.get('k', a.version.version, { requireEnabled: true }).version.value).toBe('1');
    s.update('k', b.version.version, { attributes: { enabled: true }, tags: { t: '2' } });
    const latest = s.get('k', undefined, { requireEnabled: true }).version;
    expect([latest.value, latest.tags]).toEqual(['2', { t: '2' }]);
  });
});
