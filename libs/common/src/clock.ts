import { Injectable } from '@nestjs/common';

/**
 * Time source. Inject `Clock` instead of calling `Date.now()` where time drives behaviour
 * (expiry, refresh-ahead, retention), so tests can move time without sleeping.
 */
export abstract class Clock {
  abstract now(): Date;

  /** `now()` as epoch milliseconds; hot paths use it to avoid allocating a Date. */
  nowMs(): number {
    return this.now().getTime();
  }
}

@Injectable()
export class SystemClock extends Clock {
  now(): Date {
    return new Date();
  }

  override nowMs(): number {
    return Date.now();
  }
}

/** A clock tests can set and advance. */
export class ManualClock extends Clock {
  constructor(private current: Date = new Date()) {
    super();
  }
  now(): Date {
    return new Date(this.current.getTime());
  }
  set(date: Date): void {
    this.current = new Date(date.getTime());
  }
  advance(ms: number): void {
    this.current = new Date(this.current.getTime() + ms);
  }
}
