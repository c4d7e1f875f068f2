/**
 * A list answered whole up to a limit, not paged: `truncated` says whether more rows matched than `items` holds, so a
 * caller never takes the first `limit` for all of them.
 */
export interface BoundedList<T> {
  items: T[];
  /** More matched than `items` holds (the first `limit` of them, in the list's order). */
  truncated: boolean;
}

/**
 * The first `limit` of `rows`, read with `limit + 1` (or all of them): the one row past the limit tells the list was
 * cut, without a second, counting query.
 */
export function boundedList<T>(rows: readonly T[], limit: number): BoundedList<T> {
  return { items: rows.slice(0, limit), truncated: rows.length > limit };
}
