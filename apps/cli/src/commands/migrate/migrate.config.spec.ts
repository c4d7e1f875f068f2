import { loadMigrateEnv, MigrateEnvError } from './migrate.config';

const KEY = 'a'.repeat(64);

/** What `fn` threw (undefined when it returned). */
function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

function problemsOf(env: Record<string, string>): string[] {
  const error = thrownBy(() => loadMigrateEnv(env, { needKeys: true, needDatabase: true }));
  expect(error).toBeInstanceOf(MigrateEnvError);
  return (error as MigrateEnvError).problems;
}

describe('loadMigrateEnv', () => {
  it('names only the variable that is wrong: a bad LEGACY_DATABASE_URL does not make the keys or the database "required"', () => {
    const problems = problemsOf({ LEGACY_ENCRYPTION_KEYS: KEY, LEGACY_DATABASE_URL: 'postgres://u:SecretPw@127.0.0.1:99999/legacy' });
    expect(problems).toEqual([expect.stringMatching(/^LEGACY_DATABASE_URL: /)]);
    expect(problems.join('\n')).not.toContain('SecretPw');
  });

  it('refuses a LEGACY_DATABASE_URL the PostgreSQL driver cannot read, without quoting it', () => {
    const problems = problemsOf({ LEGACY_ENCRYPTION_KEYS: KEY, LEGACY_DATABASE_URL: 'postgres://u:Secret%zzPw@127.0.0.1:5432/legacy' });
    expect(problems).toEqual([expect.stringMatching(/^LEGACY_DATABASE_URL: .*percent-encoded/)]);
    expect(problems.join('\n')).not.toContain('Secret');
  });

  it('still lists every missing variable of an empty environment', () => {
    expect(problemsOf({})).toEqual([expect.stringMatching(/^LEGACY_ENCRYPTION_KEYS: is required/), expect.stringMatching(/^LEGACY_DATABASE_URL or LEGACY_DATABASE_PATH/)]);
  });

  it('reads how long a run waits out a vault outage (MIGRATION_MAX_VAULT_OUTAGE_MS, 2 minutes unless set), and refuses one past 5 minutes', () => {
    const env = { LEGACY_ENCRYPTION_KEYS: KEY, LEGACY_DATABASE_PATH: 'legacy.sqlite' };
    expect(loadMigrateEnv(env, { needKeys: true, needDatabase: true }).maxVaultOutageMs).toBe(120_000);
    expect(loadMigrateEnv({ ...env, MIGRATION_MAX_VAULT_OUTAGE_MS: '0' }, { needKeys: true, needDatabase: true }).maxVaultOutageMs).toBe(0);
    expect(problemsOf({ ...env, MIGRATION_MAX_VAULT_OUTAGE_MS: '600000' })).toEqual([expect.stringMatching(/^MIGRATION_MAX_VAULT_OUTAGE_MS: /)]);
  });
});
