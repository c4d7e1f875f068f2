import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as common from '@app/common';
import { CredentialVaultError, ERROR_CODE_RANGES, ErrorSeverity, LockErrorCode, PersistenceErrorCode, ScheduledJobErrorCode, enumCodes, errorCodeRangeOf, type ErrorCodeRangeName } from '@app/common';
import * as keyVault from '@app/key-vault';
import { KeyVaultError, KeyVaultErrorCode } from '@app/key-vault';
import * as credentials from '@app/credentials';
import { CredentialErrorCode } from '@app/credentials';
import * as audit from '@app/audit';
import { AuditErrorCode } from '@app/audit';
import * as oauthRefresh from '@app/oauth-refresh';
import { OAuthRefreshErrorCode } from '@app/oauth-refresh';
import * as migration from '@app/migration';
import { MigrationErrorCode } from '@app/migration';
import * as rotation from '@app/rotation';
import { NotificationErrorCode, RotationErrorCode, WebhookSecretErrorCode } from '@app/rotation';
import * as keys from '@app/keys';
import { KeysErrorCode } from '@app/keys';
import { httpStatusForCode, statusForError } from './error-status';
import { HostErrorCode } from './host-errors';

/** Every lib's code enum, one per registered range: a new range does not compile until it is listed. */
const CODE_ENUMS: Record<ErrorCodeRangeName, Record<string, string | number>> = {
  keyVault: KeyVaultErrorCode,
  credentials: CredentialErrorCode,
  rotation: { ...RotationErrorCode, ...WebhookSecretErrorCode, ...NotificationErrorCode },
  oauthRefresh: OAuthRefreshErrorCode,
  audit: AuditErrorCode,
  persistence: PersistenceErrorCode,
  jobs: ScheduledJobErrorCode,
  migration: MigrationErrorCode,
  lock: LockErrorCode,
  keys: KeysErrorCode,
  host: HostErrorCode,
};

/** The host's own refusals (AllExceptionsFilter, bootstrap's answers before Nest): no lib throws them. */
const hostRows = () => enumCodes(HostErrorCode).map((code) => ({ code, codeName: HostErrorCode[code] }));

function err(code: number, severity: ErrorSeverity, name = 'SomeError'): CredentialVaultError {
  class E extends CredentialVaultError {
    readonly code = code;
    readonly codeName = 'X';
    readonly severity = severity;
  }
  const e = new E('m');
  Object.defineProperty(e, 'name', { value: name });
  return e;
}

/** The statuses clients see today; changing one is an API change, not a refactor. */
const EXPECTED: Record<number, number> = {
  1001: 503, 1002: 502, 1003: 404, 1004: 400, 1005: 504, 1006: 503, 1007: 409, 1008: 409, 1009: 403, 1010: 502,
  1011: 503, 1012: 503, 1013: 500, 1014: 400, 1015: 409, 1016: 502, 1017: 409, 1018: 504, 1019: 499, 1020: 409, 1021: 409, 1099: 500,
  2001: 400, 2002: 404, 2003: 409, 2004: 409, 2005: 404, 2006: 500, 2007: 500, 2008: 500, 2009: 409, 2010: 409, 2011: 500, 2012: 503, 2013: 409, 2014: 404, 2015: 409,
  3001: 500, 3002: 400, 3003: 404, 3004: 409, 3005: 502, 3006: 409, 3007: 409, 3008: 404, 3009: 409,
  3101: 500, 3102: 400, 3103: 404, 3110: 400, 3111: 400, 3112: 401, 3113: 401, 3114: 400, 3115: 401, 3120: 409, 3121: 502, 3122: 409, 3123: 409, 3124: 409, 3125: 409, 3126: 410, 3127: 409,
  3201: 500, 3202: 400, 3203: 400, 3204: 502, 3205: 503, 3206: 404, 3207: 409,
  4001: 404, 4002: 409, 4003: 503, 4004: 502, 4005: 404, 4006: 409, 4007: 500, 4008: 400, 4009: 502,
  5001: 400, 5002: 503, 5003: 503, 5004: 400, 5005: 500, 5006: 503, 5007: 503, 5008: 500,
  6001: 500, 6002: 500, 6003: 500, 6004: 500, 6005: 500, 6006: 500, 6007: 503, 6008: 503, 6009: 503, 6101: 500, 6102: 500,
  7001: 500,
  8001: 500, 8002: 502, 8003: 422, 8004: 422, 8005: 500, 8006: 409, 8007: 502, 8008: 503,
  9001: 503,
  9002: 503,
  9003: 503,
  10001: 400, 10002: 400, 10003: 400, 10004: 409, 10005: 400, 10006: 500, 10007: 400, 10008: 409,
  90001: 400, 90002: 400, 90003: 400, 90004: 401, 90005: 403, 90006: 404, 90007: 405, 90008: 408, 90009: 413, 90010: 414,
  90011: 415, 90012: 417, 90013: 429, 90014: 431, 90015: 503, 90016: 500,
};

describe('statusForError', () => {
  const all = Object.entries(CODE_ENUMS).flatMap(([lib, e]) => enumCodes(e).map((code) => [lib, code] as const));

  it.each(all)('%s code %i has a status from its own lib table, inside its range', (lib, code) => {
    expect(errorCodeRangeOf(code)).toBe(lib);
    // HTTP_ERROR, the host's code for an HTTP error without a more specific one, answers with that error's own status.
    if (code === HostErrorCode.HTTP_ERROR) expect(httpStatusForCode(code)).toBeUndefined();
    else expect(httpStatusForCode(code)).toBeDefined();
  });

  it('keeps every status clients see today', () => {
    expect(Object.fromEntries(all.map(([, code]) => [code, httpStatusForCode(code)]))).toEqual(EXPECTED);
  });

  it('uses the code alone: not the error name, nor the severity', () => {
    expect(statusForError(err(2002, ErrorSeverity.FATAL, 'SomethingConflictError'))).toBe(404);
    expect(statusForError(err(5002, ErrorSeverity.CLIENT))).toBe(503);
  });

  it('answers 500 for a code no lib maps, inside or outside the registered ranges', () => {
    expect(statusForError(err(2999, ErrorSeverity.CLIENT, 'CredentialNotFoundError'))).toBe(500);
    expect(statusForError(err(ERROR_CODE_RANGES.keyVault[1], ErrorSeverity.TRANSIENT))).toBe(500);
    expect(statusForError(err(42, ErrorSeverity.CLIENT))).toBe(500);
  });
});

/** Constructor arguments for the error classes whose constructor reads its arguments. */
const SAMPLE_ARGS: Record<string, unknown[]> = {
  OAuthRefreshFailedError: ['m', { integrationId: 'i', connectionId: 'c', transient: true }],
  OAuthClientRejectedError: ['invalid_client, HTTP 401', { integrationId: 'i', connectionId: 'c' }],
  OAuthAccessTokenExpiredError: ['i', 'c', new Date(0)],
  PersistenceConfigurationError: [['a problem']],
  RotationValidationError: ['m', 'field'],
  WebhookSecretValidationError: ['m', 'field'],
  WebhookTimestampTooOldError: [300],
  WebhookTimestampTooNewError: [300],
  NotificationDeliveryPendingError: [['webhook']],
};

/** One instance of every error a lib exports (KeyVaultError: one per code), found by walking the exports. */
function everyExportedError(): CredentialVaultError[] {
  const out: CredentialVaultError[] = [];
  for (const lib of [common, keyVault, credentials, audit, oauthRefresh, rotation, migration, keys] as Record<string, unknown>[]) {
    for (const value of Object.values(lib)) {
      if (typeof value !== 'function' || !(value.prototype instanceof CredentialVaultError)) continue;
      const ctor = value as new (...args: unknown[]) => CredentialVaultError;
      if (ctor === KeyVaultError) {
        for (const code of enumCodes(KeyVaultErrorCode)) out.push(new KeyVaultError(code, 'm', { operation: 'getSecret' }));
        continue;
      }
      if (ctor === keys.KeysError) {
        for (const code of enumCodes(KeysErrorCode)) out.push(new keys.KeysError(code, 'm'));
        continue;
      }
      let instance: CredentialVaultError;
      try {
        instance = new ctor(...(SAMPLE_ARGS[ctor.name] ?? ['m']));
      } catch (e) {
        throw new Error(`${ctor.name} cannot be built from ['m']: add its constructor arguments to SAMPLE_ARGS`, { cause: e });
      }
      if (instance.code !== undefined) out.push(instance); // abstract bases declare no code
    }
  }
  return out;
}

describe('error catalog', () => {
  let errors: CredentialVaultError[];
  beforeAll(() => {
    errors = everyExportedError();
  });

  it('has one codeName per code and one code per codeName, across every lib and the host', () => {
    const namesByCode = new Map<number, Set<string>>();
    const codesByName = new Map<string, Set<number>>();
    for (const e of [...errors, ...hostRows()]) {
      namesByCode.set(e.code, (namesByCode.get(e.code) ?? new Set()).add(e.codeName));
      codesByName.set(e.codeName, (codesByName.get(e.codeName) ?? new Set()).add(e.code));
    }
    const clashes = [
      ...[...namesByCode].filter(([, names]) => names.size > 1).map(([code, names]) => `${code}: ${[...names].join(', ')}`),
      ...[...codesByName].filter(([, codes]) => codes.size > 1).map(([name, codes]) => `${name}: ${[...codes].join(', ')}`),
    ];
    expect(clashes).toEqual([]);
  });

  it('throws every code of every lib enum from some exported class, and maps each thrown code', () => {
    const thrown = new Set(errors.map((e) => e.code));
    const enumerated = Object.entries(CODE_ENUMS)
      .filter(([range]) => range !== 'host')
      .flatMap(([, e]) => enumCodes(e));
    expect(enumerated.filter((code) => !thrown.has(code))).toEqual([]);
    expect(errors.filter((e) => httpStatusForCode(e.code) === undefined).map((e) => `${e.name} ${e.code}`)).toEqual([]);
  });
});

const ROOT = join(__dirname, '../../../..');
const ERROR_TABLE_DOCS = ['README.md', ...['key-vault', 'credentials', 'rotation', 'oauth-refresh', 'audit', 'common', 'migration', 'keys'].map((l) => `libs/${l}/README.md`)];

/** Rows `code codeName status` of a doc's error tables: those headed `| code | name | HTTP |` (or `codeName`). */
function documentedErrorRows(doc: string): string[] {
  const rows: string[] = [];
  let inTable = false;
  for (const line of readFileSync(join(ROOT, doc), 'utf8').split('\n')) {
    if (/^\| code \| (name|codeName) \| HTTP \|/.test(line)) inTable = true;
    else if (!line.startsWith('|')) inTable = false;
    const row = inTable && /^\| (\d+) \| `?([A-Z0-9_]+)`? \| (\d{3}) \|/.exec(line);
    if (row) rows.push(`${row[1]} ${row[2]} ${row[3]}`);
  }
  return rows;
}

describe('error tables in the docs (what clients and operators look codes up in)', () => {
  let actual: string[];
  beforeAll(() => {
    // HTTP_ERROR's status is the answer's own: `any` in the table.
    const status = (code: number) => (code === HostErrorCode.HTTP_ERROR ? 'any' : httpStatusForCode(code));
    actual = [...new Map([...everyExportedError(), ...hostRows()].map((e) => [e.code, `${e.code} ${e.codeName} ${status(e.code)}`])).values()];
  });

  it('README "Error codes" lists every code once, with its codeName and HTTP status', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8').split(/^### Error codes$/m)[1]?.split(/^#{2,3} /m)[0] ?? '';
    const documented = [...readme.matchAll(/^\| (\d+) \| `([A-Z0-9_]+)` \| (\d{3}|any) \|/gm)].map((m) => `${m[1]} ${m[2]} ${m[3]}`);
    expect(actual.filter((r) => !documented.includes(r))).toEqual([]);
    expect(documented.sort()).toEqual([...actual].sort());
  });

  it.each(ERROR_TABLE_DOCS)('%s: every row of its error tables says what the code does', (doc) => {
    expect(documentedErrorRows(doc).filter((r) => !actual.includes(r))).toEqual([]);
  });
});
