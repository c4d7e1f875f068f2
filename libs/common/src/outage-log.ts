import type { LoggerService } from '@nestjs/common';

/** How long an outage goes on before it is logged again. */
export const OUTAGE_REMINDER_MS = 60_000;

/** An outage so far, for its lines: how long it has lasted, and how many failures it has seen. */
export interface OutageSoFar {
  forMs: number;
  failures: number;
}

/**
 * An outage in the log, instead of a line per failure: the failure that starts it at `warn`, a reminder each
 * `reminderMs` it lasts (how long, how many failures), and its end at `info` — for what fails again and again while a
 * dependency is away (a connection's reconnects, outbox events retried), where a line per failure floods the log.
 * The caller words each line: this decides only when one is written.
 */
export class OutageLog {
  private since?: number;
  private lastLoggedAt = 0;
  private failures = 0;

  constructor(
    private readonly logger: Pick<LoggerService, 'warn' | 'log'>,
    private readonly reminderMs = OUTAGE_REMINDER_MS,
  ) {}

  /** An outage is under way (a failure, and no `ended` since). */
  get ongoing(): boolean {
    return this.since !== undefined;
  }

  /** Whether a failure now would be logged (it starts an outage, or the reminder is due): a caller gathers what its line says only then. */
  get lineDue(): boolean {
    return this.since === undefined || Date.now() - this.lastLoggedAt >= this.reminderMs;
  }

  /**
   * A failure: `first()` when it starts the outage — or, with `restate`, within one (a new cause, said at once) —
   * `lasting(soFar)` when the reminder is due, else nothing.
   */
  failed(first: () => string, lasting: (soFar: OutageSoFar) => string, restate = false): void {
    const now = Date.now();
    this.failures++;
    if (this.since === undefined || restate) {
      this.since ??= now;
      this.lastLoggedAt = now;
      this.logger.warn(first());
    } else if (now - this.lastLoggedAt >= this.reminderMs) {
      this.lastLoggedAt = now;
      this.logger.warn(lasting({ forMs: now - this.since, failures: this.failures }));
    }
  }

  /** It works again: `end(soFar)` at `info` when an outage was under way, which is over. */
  ended(end: (soFar: OutageSoFar) => string): void {
    if (this.since === undefined) return;
    this.logger.log(end({ forMs: Date.now() - this.since, failures: this.failures }));
    this.since = undefined;
    this.failures = 0;
  }
}
