import { foldUuid, IDENTIFIER_PATTERN, UUID_PATTERN } from './identifier';

describe('foldUuid', () => {
  const id = '0b5e8a1c-3f2d-4c6b-9a7e-5d4c3b2a1f0e';

  it('folds a UUID in any case to lower case, as the libs store it (RFC 9562: UUIDs are case-insensitive)', () => {
    expect(foldUuid(id.toUpperCase())).toBe(id);
    expect(foldUuid('0B5E8A1C-3f2d-4C6B-9a7e-5D4C3B2A1F0E')).toBe(id);
    expect(foldUuid(id)).toBe(id);
    expect(UUID_PATTERN.test(id.toUpperCase())).toBe(true);
  });

  it('leaves anything that is not a UUID as it is, for the caller to refuse or to keep case-sensitive', () => {
    for (const v of ['Acme.Prod', `${id.toUpperCase()}-X`, ` ${id.toUpperCase()}`, id.toUpperCase().replace(/-/g, ''), '', 'GITHUB']) {
      expect(foldUuid(v)).toBe(v);
    }
    for (const v of [undefined, null, 42, { id }]) expect(foldUuid(v)).toBe(v);
    // A UUID is a valid tenant/integration/connection id too; those keep their case (the libs never fold them).
    expect(IDENTIFIER_PATTERN.test(id.toUpperCase())).toBe(true);
  });
});
