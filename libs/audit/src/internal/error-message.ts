/** The message of a caught value, for a log line. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
