import { Module, type DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { isKeyVaultError, KeyVaultErrorCode, KeyVaultProvider } from '@app/key-vault';
import { VaultModule } from '../vault/vault.module';
import { AppConfig, CONFIG_VARIABLES, ConfigValidationError, loadAppConfigReadingFiles } from './app.config';
import { EMBEDDED_VAULT_VARIABLES, EXTERNAL_VAULT_VARIABLES, VAULT_RULE_COMPANIONS } from './config-rules';
import { AppConfigModule } from './config.module';
import { envSchema } from './env-schema';

/**
 * Key Vault references in the host's own configuration: a variable whose value is
 * `@keyvault:<secret-name>` (latest version) or `@keyvault:<secret-name>/<version>` (pinned) is read
 * from the vault once at start, so the host's database password, SMTP password or OAuth client
 * secrets live in Key Vault too. The vault is the one the host is configured with (KEY_VAULT_URL and
 * its identity, or the embedded local vault), so the variables that configure the vault itself cannot
 * be references.
 *
 * Local development: outside production, a reference that cannot be resolved (secret missing, vault
 * unreachable) falls back to `<VARIABLE>_FALLBACK` when that is set, with a warning naming the
 * variable. Production never falls back. Every failure names the variable and the secret name, never
 * a value.
 */
export const KEY_VAULT_REFERENCE_PREFIX = '@keyvault:';

/** Secret names as Key Vault accepts them; versions are 32 hex characters. */
const REFERENCE = /^@keyvault:([0-9a-zA-Z-]{1,127})(?:\/([0-9a-f]{32}))?$/;

/** Variables read to reach the vault: resolving them from the vault is circular. */
const VAULT_VARIABLES = new Set<string>([
  'NODE_ENV',
  'KEY_VAULT_URL',
  ...EXTERNAL_VAULT_VARIABLES,
  'KEY_VAULT_TIMEOUT_MS',
  'KEY_VAULT_MAX_ATTEMPTS',
  'KEY_VAULT_BREAKER_HALF_OPEN_AFTER_MS',
  ...EMBEDDED_VAULT_VARIABLES,
]);

export interface KeyVaultReference {
  variable: string;
  secretName: string;
  version?: string;
}

/** Reads one secret's value; the default opens the host's vault (see `resolveKeyVaultReferences`). */
export type ReferenceReader = (reference: KeyVaultReference) => Promise<string>;

export interface ResolvedReferences {
  env: Record<string, string | undefined>;
  /** Variables that were references, with where each value came from (never the value). */
  resolved: { variable: string; secretName: string; version?: string; source: 'vault' | 'fallback' }[];
  /** Warnings for the log (fallbacks used). */
  warnings: string[];
}

/** The references among the host's configuration variables; malformed ones are problems. */
export function findKeyVaultReferences(env: Record<string, string | undefined>): { references: KeyVaultReference[]; problems: string[] } {
  const references: KeyVaultReference[] = [];
  const problems: string[] = [];
  for (const variable of CONFIG_VARIABLES) {
    const value = env[variable];
    if (!value?.startsWith(KEY_VAULT_REFERENCE_PREFIX)) continue;
    if (VAULT_VARIABLES.has(variable)) {
      problems.push(`${variable}: cannot be a Key Vault reference: it configures how the vault itself is reached`);
      continue;
    }
    const match = REFERENCE.exec(value);
    if (!match) {
      problems.push(
        `${variable}: is not a valid Key Vault reference: use @keyvault:<secret-name> or @keyvault:<secret-name>/<32-hex version> (names are 1-127 of 0-9, a-z, A-Z, -)`,
      );
      continue;
    }
    references.push({ variable, secretName: match[1], ...(match[2] ? { version: match[2] } : {}) });
  }
  return { references, problems };
}

function describeFailure(error: unknown): string {
  if (!isKeyVaultError(error)) return 'the vault could not be reached';
  switch (error.code) {
    case KeyVaultErrorCode.KEY_NOT_FOUND:
      return 'no such secret (or version) in the vault';
    case KeyVaultErrorCode.DISABLED:
      return 'the secret version is disabled';
    case KeyVaultErrorCode.UNAUTHORIZED:
    case KeyVaultErrorCode.FORBIDDEN:
      return "the host's identity may not read it";
    default:
      return `the vault answered ${KeyVaultErrorCode[error.code] ?? error.code}`;
  }
}

/**
 * Replaces every reference in `env` by its value. `read` defaults to opening the vault the rest of
 * `env` configures (a short-lived Nest context with the host's own VaultModule: same identity, TLS
 * and retries as the running host). Throws ConfigValidationError listing every problem at once.
 */
export async function resolveKeyVaultReferences(
  env: Record<string, string | undefined>,
  options: { cwd?: string; read?: ReferenceReader } = {},
): Promise<ResolvedReferences> {
  const { references, problems } = findKeyVaultReferences(env);
  if (problems.length > 0) throw new ConfigValidationError(problems);
  if (references.length === 0) return { env, resolved: [], warnings: [] };

  const production = env.NODE_ENV === 'production';
  const out: Record<string, string | undefined> = { ...env };
  const resolved: ResolvedReferences['resolved'] = [];
  const warnings: string[] = [];
  const session = options.read ? { read: options.read, close: async () => undefined } : await openVault(env, options.cwd);
  try {
    for (const ref of references) {
      const where = `${ref.secretName}${ref.version ? `/${ref.version}` : ''}`;
      try {
        out[ref.variable] = await session.read(ref);
        resolved.push({ ...ref, source: 'vault' });
      } catch (error) {
        const reason = describeFailure(error);
        const fallback = env[`${ref.variable}_FALLBACK`];
        if (!production && fallback !== undefined && fallback !== '') {
          out[ref.variable] = fallback;
          resolved.push({ ...ref, source: 'fallback' });
          warnings.push(`${ref.variable}: Key Vault secret ${where} not used (${reason}); using ${ref.variable}_FALLBACK (development only)`);
        } else {
          problems.push(`${ref.variable}: the Key Vault reference to ${where} could not be resolved: ${reason}`);
        }
      }
    }
  } finally {
    await session.close();
  }
  if (problems.length > 0) throw new ConfigValidationError(problems);
  return { env: out, resolved, warnings };
}

const REFERENCE_READER_KEYS = JSON.stringify([{ id: 'reference-reader', tenant: 'none', scopes: ['admin'], sha256: '0'.repeat(64) }]);

/**
 * A variable the vault's rules compare with, usable in the vault's check: set, not a reference, and valid on its own.
 * A wrong one stays at its default there (the full check names it), as the rules leave out a value that did not parse.
 */
const companion = (name: string, value: string | undefined): boolean =>
  (VAULT_RULE_COMPANIONS as readonly string[]).includes(name) &&
  !!value &&
  !value.startsWith(KEY_VAULT_REFERENCE_PREFIX) &&
  envSchema.shape[name as (typeof VAULT_RULE_COMPANIONS)[number]].safeParse(value).success;

/** Opens the configured vault with the host's own VaultModule, from the vault variables (and those their rules compare with). */
async function openVault(env: Record<string, string | undefined>, cwd?: string): Promise<{ read: ReferenceReader; close: () => Promise<void> }> {
  const vaultEnv = Object.fromEntries(Object.entries(env).filter(([k, v]) => VAULT_VARIABLES.has(k) || companion(k, v)));
  // Only the vault's part of this configuration is used; the rest is defaults that never reach the
  // host. The variables the vault's rules compare with come along: at their defaults, EMULATOR_PORT=3000 beside
  // PORT=4000 was refused as PORT's (3000). The placeholder key (a digest no key has) only quiets the production rule
  // about authentication, which the full configuration is checked against after the references are resolved.
  // Its files too: the vault module reads its CA (and the SDK the client certificate) as it is built.
  const config = loadAppConfigReadingFiles({ ...vaultEnv, AUTH_API_KEYS: REFERENCE_READER_KEYS, LOG_LEVEL: 'error' }, cwd);
  const context = await NestFactory.createApplicationContext(ReferenceVaultModule.forRoot(config), { logger: ['error'], abortOnError: false });
  const vault = context.get(KeyVaultProvider);
  return {
    read: async (ref) => (await vault.getSecret(ref.secretName, ref.version)).value,
    close: () => context.close(),
  };
}

@Module({})
class ReferenceVaultModule {
  static forRoot(config: AppConfig): DynamicModule {
    return { module: ReferenceVaultModule, imports: [AppConfigModule.forRoot(config), VaultModule] };
  }
}

/**
 * The problems of `env` without its references (well-formed or not): the rules a referenced variable takes part in
 * wait for its value, and a problem that names one is left out.
 */
function problemsBesidesReferences(env: Record<string, string | undefined>, cwd?: string): string[] {
  const referenced = new Set(Object.keys(env).filter((k) => CONFIG_VARIABLES.includes(k) && env[k]?.startsWith(KEY_VAULT_REFERENCE_PREFIX)));
  try {
    loadAppConfigReadingFiles(Object.fromEntries(Object.entries(env).filter(([k]) => !referenced.has(k))), cwd);
    return [];
  } catch (e) {
    if (!(e instanceof ConfigValidationError)) throw e;
    const names = /\b[A-Z][A-Z0-9_]*\b/g;
    return e.problems.filter((p) => !(p.match(names) ?? []).some((name) => referenced.has(name)));
  }
}

/**
 * `loadAppConfig` for a process that starts: resolves Key Vault references first, then validates the
 * whole configuration, and that the files it names can be read (listed with the other problems). Warnings (fallbacks
 * used) go to `warn`.
 */
export async function loadAppConfigResolvingReferences(
  env: Record<string, string | undefined>,
  options: { cwd?: string; read?: ReferenceReader; warn?: (message: string) => void } = {},
): Promise<AppConfig> {
  let resolution: ResolvedReferences;
  try {
    resolution = await resolveKeyVaultReferences(env, options);
  } catch (e) {
    if (!(e instanceof ConfigValidationError)) throw e;
    // The rest of the configuration's problems too: an operator fixes them all before the next start.
    const listed = new Set(e.problems);
    throw new ConfigValidationError([...e.problems, ...problemsBesidesReferences(env, options.cwd).filter((p) => !listed.has(p))]);
  }
  const { env: resolvedEnv, warnings } = resolution;
  for (const w of warnings) (options.warn ?? ((m: string) => process.stderr.write(`${m}\n`)))(w);
  return loadAppConfigReadingFiles(resolvedEnv, options.cwd);
}
