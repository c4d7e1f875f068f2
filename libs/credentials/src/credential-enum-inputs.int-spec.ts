/**
 * The public inputs take an enum field as the enum member or as its string value (`type: 'api_key'`), as an
 * embedding app written in plain strings or JSON does; outputs stay the enums. This file is also a type-level
 * test: `tsc --noEmit` (npm run typecheck) must compile the string-valued calls below, and refuse the
 * `@ts-expect-error` ones (unknown strings), which still fail at run time with the typed VALIDATION error.
 */
import { randomBytes } from 'node:crypto';
import { Test, type TestingModule } from '@nestjs/testing';
import type { OperationContext } from '@app/common';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, credentialsStackImports, rejection, type TestDatabase } from '@app/testing';
import {
  CredentialErrorCode,
  CredentialExpiryScanner,
  CredentialsService,
  CredentialStatus,
  CredentialType,
  CredentialValidationError,
  ValueStoreKind,
  type CredentialMetadata,
  type CredentialTypeInput,
  type StoreCredentialInput,
} from './index';

/** True only when A and B are the same type (outputs must not widen to plain strings). */
type Exactly<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const outputsKeepTheEnums: [
  Exactly<CredentialMetadata['type'], CredentialType>,
  Exactly<CredentialMetadata['status'], CredentialStatus>,
  Exactly<CredentialMetadata['valueStore'], ValueStoreKind>,
] = [true, true, true];

describe('CredentialsService inputs take enum string values (SQLite, local vault)', () => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  let moduleRef: TestingModule;
  let service: CredentialsService;
  let scanner: CredentialExpiryScanner;
  const run = randomBytes(3).toString('hex');
  const ctx: OperationContext = { tenantId: `enum-in-${run}`, actor: { id: 'user:embedder' } };
  const value = () => `sk_${randomBytes(18).toString('base64url')}`;

  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    db = await createTestDatabase('sqlite');
    moduleRef = await Test.createTestingModule({
      imports: credentialsStackImports({ database: db.options, vault: emu, persistence: { outbox: { dispatch: false } } }),
    }).compile();
    await moduleRef.init();
    service = moduleRef.get(CredentialsService);
    scanner = moduleRef.get(CredentialExpiryScanner);
  });

  afterAll(async () => {
    await moduleRef?.close();
    await emu?.stop();
    await db?.drop();
  });

  it('keeps the enums on outputs (type-level)', () => {
    expect(outputsKeepTheEnums).toEqual([true, true, true]);
  });

  it('stores, validates, lists, updates and scans with string values; outputs are the enum members', async () => {
    const expiresAt = new Date(Date.now() + 86_400_000);
    const typed: CredentialTypeInput = 'api_key';
    service.validate({ type: typed, value: value() });
    const meta = await service.store(ctx, { integrationId: 'github', connectionId: 'plain', type: 'api_key', value: value(), valueStore: 'envelope', expiresAt });
    expect(meta.type).toBe(CredentialType.API_KEY);
    expect(meta.valueStore).toBe(ValueStoreKind.ENVELOPE);
    const [many] = await service.storeMany([{ ctx, input: { integrationId: 'github', connectionId: 'plain', type: 'custom_secret', value: value() } }]);
    expect(many.credential?.type).toBe(CredentialType.CUSTOM_SECRET);

    const page = await service.list(ctx, { type: 'api_key', status: 'active' });
    expect(page.items.map((c) => c.id)).toEqual([meta.id]);
    const updated = await service.updateMetadata(ctx, meta.id, { status: 'needs_reauth' });
    expect(updated.status).toBe(CredentialStatus.NEEDS_REAUTH);

    const expiring = await scanner.scanExpiringAcrossTenants({ before: new Date(expiresAt.getTime() + 1), type: 'api_key', statuses: ['needs_reauth'] });
    expect(expiring.map((r) => r.id)).toContain(meta.id);
    const live = await scanner.scanLiveAcrossTenants({ statuses: ['needs_reauth'], limit: 10_000 });
    expect(live.map((r) => r.id)).toContain(meta.id);
    expect(await scanner.countLiveAcrossTenants({ type: 'custom_secret', connectionIdPrefix: 'plai' })).toBeGreaterThanOrEqual(1);
  });

  it('refuses an unknown string with the typed VALIDATION error, at compile time and at run time', async () => {
    // @ts-expect-error not a credential type
    const input: StoreCredentialInput = { integrationId: 'github', connectionId: 'unknown', type: 'apikey', value: value() };
    const stored = await rejection(service.store(ctx, input));
    expect(stored).toBeInstanceOf(CredentialValidationError);
    expect(stored).toMatchObject({ code: CredentialErrorCode.VALIDATION, field: 'type' });
    // @ts-expect-error not a value store
    await expect(service.store(ctx, { integrationId: 'github', connectionId: 'unknown', type: 'api_key', value: value(), valueStore: 'disk' })).rejects.toMatchObject({ field: 'valueStore' });
    // @ts-expect-error not a status
    await expect(service.list(ctx, { status: 'gone' })).rejects.toMatchObject({ code: CredentialErrorCode.VALIDATION, field: 'status' });
    // @ts-expect-error not a credential type
    await expect(service.list(ctx, { type: 'apikey' })).rejects.toMatchObject({ code: CredentialErrorCode.VALIDATION, field: 'type' });
    // @ts-expect-error not a credential type
    await expect(scanner.scanExpiringAcrossTenants({ before: new Date(), type: 'apikey' })).rejects.toMatchObject({ code: CredentialErrorCode.VALIDATION, field: 'type' });
    // @ts-expect-error not a status
    await expect(scanner.scanLiveAcrossTenants({ statuses: ['gone'] })).rejects.toMatchObject({ code: CredentialErrorCode.VALIDATION, field: 'statuses' });
    // No status at all is bad input too (PostgreSQL was sent `IN ()`: a raw syntax error); a null type is no filter, as before.
    await expect(scanner.scanLiveAcrossTenants({ statuses: [] })).rejects.toMatchObject({ code: CredentialErrorCode.VALIDATION, field: 'statuses' });
    await expect(scanner.scanExpiringAcrossTenants({ before: new Date(), statuses: [] })).rejects.toMatchObject({ code: CredentialErrorCode.VALIDATION, field: 'statuses' });
    // @ts-expect-error null is not in the type, but JSON-shaped callers send it
    expect(Array.isArray(await scanner.scanExpiringAcrossTenants({ before: new Date(), type: null }))).toBe(true);
  });
});
