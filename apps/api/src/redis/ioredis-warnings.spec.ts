import { Logger } from '@nestjs/common';
import { routeIoredisWarnings } from './ioredis-warnings';

describe('routeIoredisWarnings', () => {
  it("logs ioredis' warnings as the host's lines (first word of a reply only, once a minute) and leaves other console.warn calls alone", () => {
    const written = jest.fn();
    console.warn = written;
    const logged = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    jest.useFakeTimers({ now: 0 });
    try {
      routeIoredisWarnings();
      const skipped = `Skipping the ready check because INFO command fails: "NOPERM User someone has no permissions to run the 'info' command". You can disable ready check with "enableReadyCheck".`;
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
      jest.useRealTimers();
      logged.mockRestore();
    }
  });
});
