import { randomUUID, timingSafeEqual } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type {
  DeletedSecret as SdkDeletedSecret,
  KeyVaultSecret as SdkSecret,
  SecretProperties as SdkSecretProperties,
} from '@azure/keyvault-secrets';
import { KeyVaultErrorCode } from './errors/key-vault-error-code';
import { KeyVaultError, type KeyVaultOperation } from './errors/key-vault.error';
import { keyVaultMessage } from './errors/key-vault-message';
import type { KeyVaultSecretClient } from './client/secret-client.factory';
import type { ResolvedKeyVaultOptions } from './interfaces/key-vault-module-options.interface';
import { KEY_VAULT_RESOLVED_OPTIONS, KEY_VAULT_SECRET_CLIENT } from './key-vault.internal-constants';
import {
  KeyVaultProvider,
  type DeletedSecret,
  type KeyVaultCallOptions,
  type KeyVaultDeleteOptions,
  type KeyVaultReadOptions,
  type ListPageOptions,
  type Page,
  type Secret,
  type SecretProperties,
  type SecretSummary,
  type SecretVersionRef,
  type SetSecretOptions,
  type UpdateSecretPropertiesOptions,
} from './key-vault.provider';
import { confirmBeforeResend } from './internal/confirm-before-resend';
import { confirmedRestore } from './internal/confirmed-restore';
import { assertRecoverSent, deleteConfirmingRetries, NamesInFlight, nonEmptyBackup, purgeToleratingRetries, untilDeleted } from './internal/operation-helpers';
import { toKeyVaultError } from './errors/map-key-vault-error';
import { MAX_PAGE_SIZE, OBJECT_NAME, OBJECT_VERSION, pageOptionsProblem, readFirstPage } from './internal/paging';
import type { AttemptContext } from './resilience/key-vault.resilience';
import { KeyVaultResilience } from './resilience/key-vault.resilience';

const SECRET_NAME = OBJECT_NAME;
const SECRET_VERSION = OBJECT_VERSION;

/**
 * The tag setSecret adds to each version it writes (a random id per call), so that after a lost answer it
 * recognises its own version when reading the secret back. Reserved: callers never set it, nor see it.
 */
const WRITE_MARKER_TAG = 'cv-write-id';
/** Key Vault's limit of tags per secret version. */
const MAX_TAGS = 15;
/** The seconds the SDK can send as `nbf` / `exp` (`getTime() / 1000 | 0`: 32 bits; beyond, a date wraps round). */
const MIN_SDK_SECONDS = -(2 ** 31);
const MAX_SDK_SECONDS = 2 ** 31 - 1;

/** A secret version's validity window as sent: whole seconds, as the vault stores it. */
interface SecretDates {
  expiresOn?: Date;
  notBefore?: Date;
}

/** The SDK answers an `nbf` / `exp` of 0 (1970-01-01T00:00:00Z) as the number 0, not a Date. */
function sdkDate(d: Date | number | undefined): Date | undefined {
  return typeof d === 'number' ? new Date(d * 1000) : d;
}

function callerTags(tags: Record<string, string> | undefined): Record<string, string> {
  const { [WRITE_MARKER_TAG]: _marker, ...rest } = tags ?? {};
  return rest;
}

function sameText(a: string | undefined, b: string): boolean {
  if (a === undefined) return false;
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

type Asked = { operation: KeyVaultOperation; secretName: string };

function brokenAnswer({ operation, secretName }: Asked, detail: string): KeyVaultError {
  return new KeyVaultError(KeyVaultErrorCode.INVALID_RESPONSE, keyVaultMessage(operation, KeyVaultErrorCode.INVALID_RESPONSE, { detail }), { operation, secretName });
}

/**
 * A secret as the vault answered it. `version` only when the answer names one: Key Vault's secret lists (`listSecrets`,
 * `listDeletedSecrets`) give each secret's id without a version, and `''` would reach callers as if it were one.
 */
function toSummary(p: SdkSecretProperties): SecretSummary {
  return {
    name: p.name,
    ...(p.version ? { version: p.version } : {}),
    id: p.id ?? '',
    enabled: p.enabled ?? true,
    contentType: p.contentType,
    tags: callerTags(p.tags),
    createdOn: p.createdOn,
    updatedOn: p.updatedOn,
    expiresOn: sdkDate(p.expiresOn),
    notBefore: sdkDate(p.notBefore),
    recoveryLevel: p.recoveryLevel,
    recoverableDays: p.recoverableDays,
  };
}

/** One version's properties: an answer about a version that names none is broken (a caller would record `''` as its pointer). */
function toProperties(p: SdkSecretProperties, asked: Asked): SecretProperties {
  const summary = toSummary(p);
  if (summary.version === undefined) throw brokenAnswer(asked, 'the answer names no version');
  return { ...summary, version: summary.version };
}

/**
 * A secret answer always carries its value: a missing one is a broken answer, never an empty secret
 * (`''` would be served as if it were the credential). setSecret may fall back to the value it sent.
 */
function toSecret(s: SdkSecret, asked: Asked, fallbackValue?: string): Secret {
  const value = s.value ?? fallbackValue;
  if (typeof value !== 'string') throw brokenAnswer(asked, 'the answer carries no value');
  return { value, properties: toProperties(s.properties, asked) };
}

function toDeleted(d: SdkDeletedSecret): DeletedSecret {
  return {
    properties: toSummary(d.properties),
    recoveryId: d.recoveryId ?? d.properties.recoveryId,
    deletedOn: d.deletedOn ?? d.properties.deletedOn,
    scheduledPurgeDate: d.scheduledPurgeDate ?? d.properties.scheduledPurgeDate,
  };
}

/**
 * `KeyVaultProvider` over the Azure SDK's `SecretClient`, every call through `KeyVaultResilience`.
 * Names are checked before any call (`^[0-9a-zA-Z-]{1,127}$`), so nothing else ever reaches the URL
 * path; continuation tokens must point at this vault (they are URLs the SDK follows with our token).
 */
@Injectable()
export class AzureKeyVaultProvider extends KeyVaultProvider {
  readonly vaultUrl: string;
  private readonly logger = new Logger(AzureKeyVaultProvider.name);
  /** Names a recover of this provider is running: a restore's 409 over them reads as that recover completing. */
  private readonly recovering = new NamesInFlight();

  constructor(
    @Inject(KEY_VAULT_SECRET_CLIENT) private readonly client: KeyVaultSecretClient,
    private readonly resilience: KeyVaultResilience,
    @Inject(KEY_VAULT_RESOLVED_OPTIONS) private readonly options: ResolvedKeyVaultOptions,
  ) {
    super();
    this.vaultUrl = options.vaultUrl;
  }

  async setSecret(name: string, value: string, options: SetSecretOptions = {}, call: KeyVaultCallOptions = {}): Promise<Secret> {
    this.checkName('setSecret', name);
    if (typeof value !== 'string') {
      throw this.invalid('setSecret', name, 'the value must be a string');
    }
    if (options.tags !== undefined && Object.hasOwn(options.tags, WRITE_MARKER_TAG)) {
      throw this.invalid('setSecret', name, `the tag ${WRITE_MARKER_TAG} is reserved`);
    }
    const { expiresOn, notBefore } = this.checkDates('setSecret', name, options);
    // Each Set Secret adds a version. After an attempt whose answer may have been lost, the latest version is
    // read back before sending again: carrying this call's marker and value, it is the result (no second,
    // phantom version). A call that sets all 15 tags itself leaves no room for the marker: re-sent unchecked.
    const marker = Object.keys(options.tags ?? {}).length < MAX_TAGS ? randomUUID() : undefined;
    const tags = marker === undefined ? options.tags : { ...options.tags, [WRITE_MARKER_TAG]: marker };
    const attempt = async ({ signal }: AttemptContext, earlierMayHaveLanded: boolean) => {
      if (earlierMayHaveLanded && marker !== undefined) {
        const landed = await this.latestIfWrittenBy(name, marker, value, signal);
        if (landed) return landed;
      }
      const secret = await this.client.setSecret(name, value, {
        contentType: options.contentType,
        tags,
        enabled: options.enabled,
        expiresOn,
        notBefore,
        abortSignal: signal,
      });
      return toSecret(secret, { operation: 'setSecret', secretName: name }, value);
    };
    return this.resilience.execute('setSecret', name, confirmBeforeResend('setSecret', name, attempt), { signal: call.signal });
  }

  async getSecret(name: string, version?: string, call: KeyVaultReadOptions = {}): Promise<Secret> {
    this.checkName('getSecret', name);
    if (version !== undefined) this.checkVersion('getSecret', name, version);
    return this.resilience.execute(
      'getSecret',
      name,
      async ({ signal }) => toSecret(await this.client.getSecret(name, { version, abortSignal: signal }), { operation: 'getSecret', secretName: name }),
      { signal: call.signal, abortInFlight: true, notFoundExpected: call.notFoundExpected },
    );
  }

  async updateSecretProperties(
    name: string,
    version: string,
    options: UpdateSecretPropertiesOptions,
  ): Promise<SecretProperties> {
    this.checkName('updateSecretProperties', name);
    this.checkVersion('updateSecretProperties', name, version);
    const { expiresOn, notBefore } = this.checkDates('updateSecretProperties', name, options);
    return this.resilience.execute('updateSecretProperties', name, async ({ signal }) =>
      toProperties(
        await this.client.updateSecretProperties(name, version, {
          contentType: options.contentType,
          tags: options.tags,
          enabled: options.enabled,
          expiresOn,
          notBefore,
          abortSignal: signal,
        }),
        { operation: 'updateSecretProperties', secretName: name },
      ),
    );
  }

  async listSecrets(options: ListPageOptions = {}): Promise<Page<SecretSummary>> {
    this.checkPage('listSecrets', undefined, options, '/secrets');
    return this.resilience.execute('listSecrets', undefined, (ctx) =>
      this.firstPage(ctx, this.client.listPropertiesOfSecrets({ abortSignal: ctx.signal }), options, toSummary),
    );
  }

  async *listAllSecrets(): AsyncIterable<SecretSummary> {
    let continuationToken: string | undefined;
    do {
      const page = await this.listSecrets({ maxPageSize: MAX_PAGE_SIZE, continuationToken });
      yield* page.items;
      continuationToken = page.continuationToken;
    } while (continuationToken);
  }

  async listSecretVersions(name: string, options: ListPageOptions = {}): Promise<Page<SecretProperties>> {
    this.checkName('listSecretVersions', name);
    this.checkPage('listSecretVersions', name, options, `/secrets/${name}/versions`);
    return this.resilience.execute('listSecretVersions', name, (ctx) =>
      this.firstPage(ctx, this.client.listPropertiesOfSecretVersions(name, { abortSignal: ctx.signal }), options, (p) =>
        toProperties(p, { operation: 'listSecretVersions', secretName: name }),
      ),
    );
  }

  async *listAllSecretVersions(name: string): AsyncIterable<SecretProperties> {
    let continuationToken: string | undefined;
    do {
      const page = await this.listSecretVersions(name, { maxPageSize: MAX_PAGE_SIZE, continuationToken });
      yield* page.items;
      continuationToken = page.continuationToken;
    } while (continuationToken);
  }

  async deleteSecret(name: string, call: KeyVaultDeleteOptions = {}): Promise<DeletedSecret> {
    this.checkName('deleteSecret', name);
    const intervalInMs = this.options.resilience.pollIntervalMs;
    return this.resilience.execute(
      'deleteSecret',
      name,
      ({ signal, attempt }) =>
        deleteConfirmingRetries(
          'deleteSecret',
          attempt,
          async () =>
            toDeleted(
              await untilDeleted('deleteSecret', name, await this.client.beginDeleteSecret(name, { intervalInMs, abortSignal: signal }), {
                intervalMs: intervalInMs,
                signal,
                versions: () => this.client.listPropertiesOfSecretVersions(name, { abortSignal: signal }),
              }),
            ),
          async () => toDeleted(await this.client.getDeletedSecret(name, { abortSignal: signal })),
        ),
      { notFoundExpected: call.notFoundExpected, beingDeletedExpected: call.beingDeletedExpected },
    );
  }

  async getDeletedSecret(name: string, call: KeyVaultReadOptions = {}): Promise<DeletedSecret> {
    this.checkName('getDeletedSecret', name);
    return this.resilience.execute('getDeletedSecret', name, async ({ signal }) => toDeleted(await this.client.getDeletedSecret(name, { abortSignal: signal })), {
      signal: call.signal,
      notFoundExpected: call.notFoundExpected,
    });
  }

  async listDeletedSecrets(options: ListPageOptions = {}): Promise<Page<DeletedSecret>> {
    this.checkPage('listDeletedSecrets', undefined, options, '/deletedsecrets');
    return this.resilience.execute('listDeletedSecrets', undefined, (ctx) =>
      this.firstPage(ctx, this.client.listDeletedSecrets({ abortSignal: ctx.signal }), options, toDeleted),
    );
  }

  async recoverDeletedSecret(name: string): Promise<SecretProperties> {
    this.checkName('recoverDeletedSecret', name);
    const intervalInMs = this.options.resilience.pollIntervalMs;
    // The SDK's recover poller first reads the secret and stops if it is already live: a retry after a lost
    // answer is harmless, and a first attempt that finds it live is refused (assertRecoverSent).
    // Each attempt marks the name recovering: a restore's 409 meanwhile is OBJECT_BEING_RECOVERED (confirmedRestore).
    return this.resilience.execute('recoverDeletedSecret', name, ({ signal, attempt }) =>
      this.recovering.during(name, async () => {
        const poller = await this.client.beginRecoverDeletedSecret(name, { intervalInMs, abortSignal: signal });
        const recovered = await poller.pollUntilDone({ abortSignal: signal });
        assertRecoverSent('recoverDeletedSecret', attempt, poller, name);
        return toProperties(recovered, { operation: 'recoverDeletedSecret', secretName: name });
      }),
    );
  }

  async purgeDeletedSecret(name: string): Promise<void> {
    this.checkName('purgeDeletedSecret', name);
    return this.resilience.execute('purgeDeletedSecret', name, ({ signal, attempt }) =>
      purgeToleratingRetries('purgeDeletedSecret', attempt, () => this.client.purgeDeletedSecret(name, { abortSignal: signal })),
    );
  }

  async backupSecret(name: string): Promise<Uint8Array> {
    this.checkName('backupSecret', name);
    return this.resilience.execute('backupSecret', name, async ({ signal }) => nonEmptyBackup(await this.client.backupSecret(name, { abortSignal: signal }), 'backupSecret', name));
  }

  async restoreSecretBackup(backup: Uint8Array, expected?: SecretVersionRef): Promise<SecretProperties> {
    if (!(backup instanceof Uint8Array) || backup.length === 0) {
      throw this.invalid('restoreSecretBackup', undefined, 'the backup must be a non-empty Uint8Array');
    }
    if (expected !== undefined) {
      this.checkName('restoreSecretBackup', expected.name);
      this.checkVersion('restoreSecretBackup', expected.name, expected.version);
    }
    // A 409 is told by reading the name: a purge still completing (retried), a retry's own earlier restore, or a conflict.
    return confirmedRestore(this.resilience, {
      operation: 'restoreSecretBackup',
      kind: 'secret',
      expected,
      logger: this.logger,
      restore: async (signal) => {
        const restored = await this.client.restoreSecretBackup(backup, { abortSignal: signal });
        return toProperties(restored, { operation: 'restoreSecretBackup', secretName: restored.name });
      },
      // The value read with it is dropped at once: only the properties are the answer.
      read: async (name, version, signal) =>
        toProperties((await this.client.getSecret(name, { version, abortSignal: signal })).properties, { operation: 'restoreSecretBackup', secretName: name }),
      readDeleted: (name, signal) => this.client.getDeletedSecret(name, { abortSignal: signal }),
      recovering: (name) => this.recovering.has(name),
    });
  }

  /**
   * The latest version when an earlier attempt of this setSecret wrote it (its marker, and its value —
   * compared here, never logged); undefined when it did not land (yet) or cannot be read (disabled, or an
   * identity allowed to set but not to get): then the value is sent again, as without the check.
   */
  private async latestIfWrittenBy(name: string, marker: string, value: string, signal: AbortSignal): Promise<Secret | undefined> {
    let latest: SdkSecret;
    try {
      latest = await this.client.getSecret(name, { abortSignal: signal });
    } catch (e) {
      const error = toKeyVaultError(e, { operation: 'setSecret', secretName: name });
      if (error.code === KeyVaultErrorCode.KEY_NOT_FOUND || error.code === KeyVaultErrorCode.DISABLED || error.code === KeyVaultErrorCode.FORBIDDEN) return undefined;
      throw e;
    }
    if (latest.properties.tags?.[WRITE_MARKER_TAG] !== marker || !sameText(latest.value, value)) return undefined;
    this.logger.warn('Key Vault setSecret: an earlier attempt stored the value but its answer was lost; its version, read back, is the result (not stored twice)');
    return toSecret(latest, { operation: 'setSecret', secretName: name });
  }

  private firstPage<S, T>(
    ctx: AttemptContext,
    iterable: { byPage(settings?: { maxPageSize?: number; continuationToken?: string }): AsyncIterableIterator<S[]> },
    options: ListPageOptions,
    map: (item: S) => T,
  ): Promise<Page<T>> {
    return readFirstPage(ctx, iterable, options, map);
  }

  private checkName(operation: KeyVaultOperation, name: string): void {
    if (typeof name !== 'string' || !SECRET_NAME.test(name)) {
      throw this.invalid(operation, typeof name === 'string' ? name : undefined, 'secret names are 1-127 characters of 0-9, a-z, A-Z and -');
    }
  }

  private checkVersion(operation: KeyVaultOperation, name: string, version: string): void {
    if (typeof version !== 'string' || !SECRET_VERSION.test(version)) {
      throw this.invalid(operation, name, 'a secret version is 1-64 letters or digits');
    }
  }

  private checkPage(operation: KeyVaultOperation, name: string | undefined, options: ListPageOptions, listPath: string): void {
    const problem = pageOptionsProblem(this.vaultUrl, listPath, options);
    if (problem) throw this.invalid(operation, name, problem);
  }

  /**
   * `nbf` / `exp` are NumericDate seconds and the SDK cuts a fraction toward zero (`getTime() / 1000 | 0`): a notBefore
   * moved up to 999 ms earlier, an expiry before 1970 later, and a date outside 32 bits wrapped round (an expiry in 1901
   * recorded as 2038). Rounded here inward instead — notBefore up, expiresOn down, never a wider window than asked —
   * and a date the SDK cannot carry, or a window rounding leaves empty, is refused before any call.
   */
  private checkDates(operation: KeyVaultOperation, name: string, options: SecretDates): SecretDates {
    const dates: SecretDates = {};
    for (const [field, round] of [['expiresOn', Math.floor], ['notBefore', Math.ceil]] as const) {
      const d: unknown = options[field];
      if (d === undefined) continue;
      if (!(d instanceof Date) || Number.isNaN(d.getTime())) throw this.invalid(operation, name, `${field} must be a valid Date`);
      const seconds = round(d.getTime() / 1000);
      if (seconds < MIN_SDK_SECONDS || seconds > MAX_SDK_SECONDS) {
        throw this.invalid(operation, name, `${field} must be from 1901-12-13T20:45:52Z to 2038-01-19T03:14:07Z (the SDK sends 32-bit seconds)`);
      }
      dates[field] = new Date(seconds * 1000);
    }
    if (dates.expiresOn && dates.notBefore && dates.notBefore.getTime() >= dates.expiresOn.getTime()) {
      throw this.invalid(operation, name, 'notBefore must be before expiresOn (in whole seconds: notBefore is rounded up, expiresOn down)');
    }
    return dates;
  }

  private invalid(operation: KeyVaultOperation, secretName: string | undefined, why: string): KeyVaultError {
    return new KeyVaultError(KeyVaultErrorCode.INVALID_REQUEST, keyVaultMessage(operation, KeyVaultErrorCode.INVALID_REQUEST, { detail: why, verb: 'refused' }), {
      operation,
      secretName,
    });
  }
}
