import { Global, Inject, Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Clock, ManualClock, SystemClock, libClock, provideLibClock } from './clock';

const LIB_CLOCK = Symbol('lib-clock');
const LIB_OPTIONS = Symbol('lib-options');

@Injectable()
class UsesClock {
  constructor(@Inject(LIB_CLOCK) readonly clock: Clock) {}
}

async function libWith(options: { clock?: Clock }, host?: Clock): Promise<Clock> {
  @Module({ providers: [{ provide: LIB_OPTIONS, useValue: options }, provideLibClock(LIB_CLOCK, LIB_OPTIONS), UsesClock] })
  class LibModule {}
  const imports: unknown[] = [LibModule];
  if (host) {
    @Global()
    @Module({ providers: [{ provide: Clock, useValue: host }], exports: [Clock] })
    class HostModule {}
    imports.push(HostModule);
  }
  const ref = await Test.createTestingModule({ imports: imports as never[] }).compile();
  return ref.get(UsesClock).clock;
}

describe('the Clock rule', () => {
  const host = new ManualClock(new Date(1000));
  const own = new ManualClock(new Date(2000));

  it("takes the lib's option, else the host's global Clock, else the system clock", async () => {
    expect(libClock(own, host)).toBe(own);
    expect(libClock(undefined, host)).toBe(host);
    expect(libClock()).toBeInstanceOf(SystemClock);
    await expect(libWith({ clock: own }, host)).resolves.toBe(own);
    await expect(libWith({}, host)).resolves.toBe(host);
    await expect(libWith({})).resolves.toBeInstanceOf(SystemClock);
  });
});
