import { FactoryProvider, Injectable, InjectionToken } from '@nestjs/common';

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

/**
 * The Clock rule, the same in every lib: the lib's own option (`clock` in its module options) wins,
 * else the host's global `Clock` provider, else the system clock.
 */
export function libClock(option?: Clock, host?: Clock): Clock {
  return option ?? host ?? new SystemClock();
}

/**
 * The provider of a lib's clock token (e.g. `CREDENTIALS_CLOCK`) built by `libClock`, from the lib's
 * resolved options (`optionsToken`, an object with an optional `clock`) and the host's `Clock`.
 * Services inject the lib's token, so a lib never provides `Clock` itself (which would shadow the host's).
 */
export function provideLibClock(token: InjectionToken, optionsToken: InjectionToken): FactoryProvider<Clock> {
  return {
    provide: token,
    useFactory: (options: { clock?: Clock } | undefined, host?: Clock) => libClock(options?.clock, host),
    inject: [optionsToken, { token: Clock, optional: true }],
  };
}
