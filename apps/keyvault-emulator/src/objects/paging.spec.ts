import fc from 'fast-check';
import { KeyVaultHttpError } from '../errors';
import { decodeSkipToken, encodeSkipToken, paginate, parseMaxResults } from './paging';

describe('paging', () => {
  it('maxresults defaults to 25 and must be an integer 1..25', () => {
    expect(parseMaxResults(null)).toBe(25);
    expect(parseMaxResults('1')).toBe(1);
    expect(parseMaxResults('25')).toBe(25);
    for (const bad of ['0', '26', '2.5', 'x', '-3']) expect(() => parseMaxResults(bad)).toThrow(KeyVaultHttpError);
  });

  it('skip tokens round-trip any marker and are URL-safe', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), (marker) => {
        const token = encodeSkipToken(marker);
        expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
        expect(decodeSkipToken(token)).toBe(marker);
      }),
    );
    expect(() => decodeSkipToken('garbage!')).toThrow(KeyVaultHttpError);
    expect(() => decodeSkipToken(Buffer.from('{"x":1}').toString('base64url'))).toThrow(KeyVaultHttpError);
  });

  it('walking pages visits every item exactly once, in order', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.string(), { maxLength: 80 }), fc.integer({ min: 1, max: 25 }), (keys, size) => {
        const sorted = [...keys].sort();
        const seen: string[] = [];
        let marker: string | undefined;
        let guard = 0;
        do {
          const page = paginate(sorted, (k) => k, size, marker);
          expect(page.items.length).toBeLessThanOrEqual(size);
          seen.push(...page.items);
          marker = page.nextMarker;
        } while (marker !== undefined && ++guard < 1000);
        expect(seen).toEqual(sorted);
      }),
    );
  });

  it('a page after a deleted marker resumes at the next key', () => {
    expect(paginate(['a', 'c', 'd'], (k) => k, 2, 'b').items).toEqual(['c', 'd']);
  });
});
