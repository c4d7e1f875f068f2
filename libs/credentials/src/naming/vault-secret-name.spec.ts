import fc from 'fast-check';
import { CREDENTIAL_TYPES, CredentialType } from '../credential-type';
import { CredentialErrorCode, CredentialGenerationsExhaustedError } from '../errors/credential-errors';
import {
  MAX_GENERATION,
  KEY_VAULT_NAME_PATTERN,
  credentialSecretBaseName,
  credentialSecretGeneration,
  credentialSecretName,
  dataKeySecretName,
  decodeNameComponent,
  encodeNameComponent,
} from './vault-secret-name';

const ID_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@-'.split('');
// Ids biased towards the hard cases: case variants, escapes, and lengths up to the 128 maximum.
const idArb = fc.oneof(
  fc.string({ unit: fc.constantFrom(...ID_CHARS), minLength: 1, maxLength: 12 }),
  fc.string({ unit: fc.constantFrom('a', 'A', '_', '.', '-', '0'), minLength: 1, maxLength: 6 }),
  fc.string({ unit: fc.constantFrom(...ID_CHARS), minLength: 100, maxLength: 128 }),
);
const partsArb = fc.record({
  tenantId: idArb,
  integrationId: idArb,
  type: fc.constantFrom(...CREDENTIAL_TYPES),
  connectionId: idArb,
});
const key = (p: { tenantId: string; integrationId: string; type: string; connectionId: string }, g: number) =>
  JSON.stringify([p.tenantId, p.integrationId, p.type, p.connectionId, g]);

describe('Key Vault secret names', () => {
  it('are always valid Key Vault names (charset, 1..127)', () => {
    fc.assert(
      fc.property(partsArb, fc.integer({ min: 0, max: 999_999 }), (parts, g) => {
        const name = credentialSecretName(parts, g);
        expect(name).toMatch(KEY_VAULT_NAME_PATTERN);
        expect(name).toBe(name.toLowerCase());
      }),
      { numRuns: 2000 },
    );
  });

  it('never collide (case-insensitively) for distinct (tenant, integration, type, connection, generation)', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.tuple(partsArb, fc.integer({ min: 0, max: 3 })), { minLength: 2, maxLength: 60, selector: ([p, g]) => key(p, g) }), (inputs) => {
        const names = inputs.map(([p, g]) => credentialSecretName(p, g).toLowerCase());
        expect(new Set(names).size).toBe(inputs.length);
      }),
      { numRuns: 500 },
    );
  });

  it('keeps ids that differ only in case, "_" vs "-" or "." apart, and is deterministic', () => {
    const base = { integrationId: 'github', type: CredentialType.API_KEY, connectionId: 'c1' };
    const names = ['acme', 'Acme', 'ACME', 'ac_me', 'ac-me', 'ac.me', 'ac:me', 'ac@me'].map((t) =>
      credentialSecretName({ ...base, tenantId: t }, 0).toLowerCase(),
    );
    expect(new Set(names).size).toBe(names.length);
    expect(credentialSecretName({ ...base, tenantId: 'acme' }, 0)).toBe(credentialSecretName({ ...base, tenantId: 'acme' }, 0));
    // Field boundaries cannot shift: ("a-b", "c") vs ("a", "b-c").
    expect(credentialSecretName({ ...base, tenantId: 'a-b', integrationId: 'c' }, 0)).not.toBe(
      credentialSecretName({ ...base, tenantId: 'a', integrationId: 'b-c' }, 0),
    );
  });

  it('falls back to a SHA-256 name for long ids, still valid and distinct', () => {
    const long = 'X'.repeat(128);
    const a = credentialSecretName({ tenantId: long, integrationId: long, type: CredentialType.API_KEY, connectionId: long }, 7);
    const b = credentialSecretName({ tenantId: long, integrationId: long, type: CredentialType.API_KEY, connectionId: long.slice(1) + 'Y' }, 7);
    expect(a).toMatch(/^cv-h-[0-9a-f]{64}--g7$/);
    expect(a).toMatch(KEY_VAULT_NAME_PATTERN);
    expect(a).not.toBe(b);
  });

  it('uses readable encoded names when they fit', () => {
    expect(credentialSecretBaseName({ tenantId: 'Acme_1', integrationId: 'github.app', type: CredentialType.OAUTH_REFRESH_TOKEN, connectionId: 'u@x' })).toBe(
      'cv---acme-21--github-1app--ort--u-4x',
    );
  });

  it('reads the generation back from a credential secret name, encoded or hashed; none from another name', () => {
    fc.assert(
      fc.property(partsArb, fc.integer({ min: 0, max: 999_999 }), (parts, g) => {
        expect(credentialSecretGeneration(credentialSecretName(parts, g))).toBe(g);
      }),
    );
    for (const name of ['cv-k--acme', 'cv--acme--github--ak--main', 'cv--acme--g1--ak--g01', 'cv--x--g1234567']) expect(credentialSecretGeneration(name)).toBeUndefined();
  });

  it('encodes ids reversibly', () => {
    fc.assert(
      fc.property(idArb, (id) => {
        expect(decodeNameComponent(encodeNameComponent(id))).toBe(id);
        expect(encodeNameComponent(id)).not.toContain('--');
      }),
    );
  });

  it('gives each tenant a distinct, valid data-key name that cannot equal a credential name', () => {
    fc.assert(
      fc.property(idArb, idArb, partsArb, (t1, t2, parts) => {
        const n1 = dataKeySecretName(t1);
        expect(n1).toMatch(KEY_VAULT_NAME_PATTERN);
        if (t1 !== t2) expect(n1).not.toBe(dataKeySecretName(t2));
        expect(n1).not.toBe(credentialSecretName(parts, 0));
      }),
    );
  });
});

describe('a generation past the last name', () => {
  const parts = { tenantId: 'acme', integrationId: 'gh', type: CredentialType.API_KEY, connectionId: 'c' };

  it('is GENERATIONS_EXHAUSTED (2015), a typed error with a stable code, not a plain Error', () => {
    expect(credentialSecretName(parts, MAX_GENERATION)).toMatch(/--g999999$/);
    expect(() => credentialSecretName(parts, MAX_GENERATION + 1)).toThrow(
      expect.objectContaining({ code: CredentialErrorCode.GENERATIONS_EXHAUSTED, codeName: 'GENERATIONS_EXHAUSTED', generation: MAX_GENERATION + 1 }),
    );
    expect(() => credentialSecretName(parts, MAX_GENERATION + 1)).toThrow(CredentialGenerationsExhaustedError);
  });
});
