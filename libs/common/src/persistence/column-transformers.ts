import type { ValueTransformer } from 'typeorm';

/**
 * Dates as epoch milliseconds in BIGINT columns: identical on SQLite and PostgreSQL, compared
 * numerically, no time-zone surprises. pg returns BIGINT as a string, SQLite as a number.
 */
export const epochMsDate: ValueTransformer = {
  to: (value: Date | null | undefined) => (value == null ? value : value.getTime()),
  from: (value: string | number | null) => (value == null ? null : new Date(Number(value))),
};

/** JSON in a TEXT column (portable: json/jsonb differ between the two databases). */
export const jsonText: ValueTransformer = {
  to: (value: unknown) => (value === undefined ? undefined : value === null ? null : JSON.stringify(value)),
  from: (value: string | null) => (value == null ? null : JSON.parse(value)),
};
