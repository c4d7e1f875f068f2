import { boundedList } from './bounded-list';

describe('boundedList', () => {
  it('is truncated only when a row past the limit was read', () => {
    expect(boundedList([1, 2, 3, 4], 3)).toEqual({ items: [1, 2, 3], truncated: true });
    expect(boundedList([1, 2, 3], 3)).toEqual({ items: [1, 2, 3], truncated: false });
    expect(boundedList([], 3)).toEqual({ items: [], truncated: false });
  });
});
