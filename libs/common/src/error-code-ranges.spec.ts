import { ERROR_CODE_RANGES, LockErrorCode, PersistenceErrorCode, ScheduledJobErrorCode, enumCodes, errorCodeRangeOf } from '@app/common';

describe('ERROR_CODE_RANGES', () => {
  const ranges = Object.entries(ERROR_CODE_RANGES);

  it('are well-formed and do not overlap', () => {
    for (const [name, [from, to]] of ranges) {
      expect({ name, ok: Number.isInteger(from) && Number.isInteger(to) && from > 0 && from <= to }).toEqual({ name, ok: true });
    }
    for (const [a, [aFrom, aTo]] of ranges) {
      for (const [b, [bFrom, bTo]] of ranges) {
        if (a !== b) expect({ a, b, overlap: aFrom <= bTo && bFrom <= aTo }).toEqual({ a, b, overlap: false });
      }
    }
  });

  it('finds the owner of a code, and no owner outside every block', () => {
    expect(errorCodeRangeOf(1003)).toBe('keyVault');
    expect(errorCodeRangeOf(2999)).toBe('credentials');
    expect(errorCodeRangeOf(42)).toBeUndefined();
  });

  it.each([
    ['lock', LockErrorCode],
    ['persistence', PersistenceErrorCode],
    ['jobs', ScheduledJobErrorCode],
  ] as const)("keeps libs/common's %s codes in their block", (range, codes) => {
    expect(enumCodes(codes).length).toBeGreaterThan(0);
    for (const code of enumCodes(codes)) expect(errorCodeRangeOf(code)).toBe(range);
  });
});
