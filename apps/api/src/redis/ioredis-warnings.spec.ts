import { Logger } from '@nestjs/common';
import { routeIoredisWarnings } from './ioredis-warnings';

describe('routeIoredisWarnings', () => {
  const own = console.warn;
  const skipped = `Skipping the ready check because INFO command fails: "NOPERM User someone has no permissions to run the 'info' command". You can disable ready check with "enableReadyCheck".`;
  let written: jest.Mock;
  let logged: jest.SpyInstance;

  beforeEach(() => {
    written = jest.fn();
    console.warn = written;
    logged = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
  });

  afterEach(() => {
    console.warn = own;
    logged.mockRestore();
  });

  it("logs ioredis' warnings as the host's lines (first word of a reply only, once a minute) and leaves other console.warn calls alone", () => {
    jest.useFakeTimers({ now: 0 });
    const release = routeIoredisWarnings();
    try {
      console.warn(skipped);
      console.warn(skipped);
      console.warn('something else', 1);
      jest.setSystemTime(60_000);
      console.warn(skipped);
      console.warn("[ERROR] The server returned \"wrong number of arguments for 'auth' command\". You are probably passing both username and password");
      expect(logged.mock.calls.map((c) => String(c[0]))).toEqual([
        'Redis refused INFO (NOPERM): ioredis skips its check that Redis has loaded its data, so commands may meet a Redis still loading; give the REDIS_URL user INFO',
        'Redis refused INFO (NOPERM): ioredis skips its check that Redis has loaded its data, so commands may meet a Redis still loading; give the REDIS_URL user INFO',
        'REDIS_URL gives a user name, and Redis (5 or older) takes a password alone: the connection goes on unauthenticated; remove the user name from REDIS_URL',
      ]);
      expect(written.mock.calls).toEqual([['something else', 1]]);
    } finally {
      release();
      jest.useRealTimers();
    }
  });

  // Two hosts in one process (tests, an application embedding two): the first one's shutdown must not end the other's routing.
  it('routes while any holder holds it, and gives console.warn back when the last releases (a release repeated counts once)', () => {
    const first = routeIoredisWarnings();
    const second = routeIoredisWarnings();
    first();
    first();
    console.warn(skipped);
    expect(logged).toHaveBeenCalledTimes(1);
    second();
    expect(console.warn).toBe(written);
    console.warn(skipped);
    expect(written).toHaveBeenCalledTimes(1);
  });

  // Someone wrapped console.warn after the host did (a test's spy, another library): theirs stays, ours passes through.
  it("leaves a wrapper installed over it in place at release, and passes everything through to what it wrapped", () => {
    const release = routeIoredisWarnings();
    const routed = console.warn;
    const over = jest.fn((...args: unknown[]) => routed(...args));
    console.warn = over;
    release();
    expect(console.warn).toBe(over);
    console.warn(skipped);
    expect(logged).not.toHaveBeenCalled();
    expect(written.mock.calls).toEqual([[skipped]]);
  });
});
