import type { Logger } from '@nestjs/common';
import { RedisOutageLog, redisAddress, refusedCredentials } from './host-redis';

/**
 * What one Redis connection writes while Redis is down, minute by minute (the e2e, test/redis-outage-log, sees the
 * first and last lines of a few seconds' outage; the reminders need minutes, so they are read here on a fake clock).
 */
describe('RedisOutageLog', () => {
  afterEach(() => jest.useRealTimers());

  const capture = () => {
    const lines: string[] = [];
    const logger = { warn: (m: string) => lines.push(`warn ${m}`), log: (m: string) => lines.push(`info ${m}`) } as unknown as Logger;
    return { lines, logger };
  };
  const refused = Object.assign(new Error('connect ECONNREFUSED 10.0.0.7:6379'), { code: 'ECONNREFUSED' });

  it('logs an outage once, again each minute it lasts (how long, how many attempts), and its end at info', () => {
    jest.useFakeTimers({ now: 0 });
    const { lines, logger } = capture();
    const outage = new RedisOutageLog('commands', logger);
    // ioredis' attempts once its backoff is at its cap: one every 2 s, for 150 s.
    for (let t = 0; t <= 150_000; t += 2_000) {
      jest.setSystemTime(t);
      outage.failed(refused);
    }
    jest.setSystemTime(151_000);
    outage.answered();
    expect(lines).toEqual([
      'warn commands: ECONNREFUSED: Redis does not answer; reconnecting (logged again each minute it lasts, and once it is back)',
      'warn commands: ECONNREFUSED: Redis does not answer for 60 s (31 failed attempts); reconnecting',
      'warn commands: ECONNREFUSED: Redis does not answer for 120 s (61 failed attempts); reconnecting',
      'info commands: Redis answers again after 151 s (76 failed attempts)',
    ]);
    // Only the error's code: its message names the address (a URL may carry a password).
    expect(lines.join('\n')).not.toContain('10.0.0.7');
  });

  it('starts each outage afresh, and says nothing of a connection that was never down', () => {
    jest.useFakeTimers({ now: 0 });
    const { lines, logger } = capture();
    const outage = new RedisOutageLog('cache-invalidation', logger);
    outage.answered();
    outage.failed(refused);
    jest.setSystemTime(4_000);
    outage.answered();
    jest.setSystemTime(70_000);
    outage.failed(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
    jest.setSystemTime(71_000);
    outage.answered();
    expect(lines).toEqual([
      'warn cache-invalidation: ECONNREFUSED: Redis does not answer; reconnecting (logged again each minute it lasts, and once it is back)',
      'info cache-invalidation: Redis answers again after 4 s (1 failed attempt)',
      'warn cache-invalidation: ECONNRESET: Redis does not answer; reconnecting (logged again each minute it lasts, and once it is back)',
      'info cache-invalidation: Redis answers again after 1 s (1 failed attempt)',
    ]);
  });
  /** An error reply as ioredis gives it: a ReplyError, no code, the reply as its message. */
  const reply = (message: string) => Object.assign(new Error(message), { name: 'ReplyError' });

  it('says Redis refused the credentials (the reply\'s first word only), once, each minute it lasts, and when they are accepted', () => {
    jest.useFakeTimers({ now: 0 });
    const { lines, logger } = capture();
    const outage = new RedisOutageLog('commands', logger);
    for (let t = 0; t <= 60_000; t += 2_000) {
      jest.setSystemTime(t);
      outage.failed(reply('WRONGPASS invalid username-password pair or user is disabled.'));
    }
    expect(outage.refusingCredentials).toBe(true);
    jest.setSystemTime(61_000);
    outage.answered();
    expect(outage.refusingCredentials).toBe(false);
    expect(lines).toEqual([
      'warn commands: WRONGPASS: Redis refused the credentials of REDIS_URL; retrying (logged again each minute it lasts, and once they are accepted)',
      'warn commands: WRONGPASS: Redis refuses the credentials of REDIS_URL for 60 s (31 failed attempts); retrying',
      'info commands: Redis accepts the credentials again after 61 s (31 failed attempts)',
    ]);
  });

  it('a cause that changes during an outage is logged at once: Redis back, with a password the host does not have', () => {
    jest.useFakeTimers({ now: 0 });
    const { lines, logger } = capture();
    const outage = new RedisOutageLog('commands', logger);
    outage.failed(refused);
    jest.setSystemTime(4_000);
    outage.failed(reply('NOAUTH Authentication required.'));
    jest.setSystemTime(6_000);
    outage.failed(reply('NOAUTH Authentication required.'));
    expect(outage.refusingCredentials).toBe(true);
    expect(lines).toEqual([
      'warn commands: ECONNREFUSED: Redis does not answer; reconnecting (logged again each minute it lasts, and once it is back)',
      'warn commands: NOAUTH: Redis refused the credentials of REDIS_URL; retrying (logged again each minute it lasts, and once they are accepted)',
    ]);
  });

  it('a cause that flips at each attempt (two backends, one refusing, one gone) logs each cause once, then the minute reminder: no line per attempt', () => {
    jest.useFakeTimers({ now: 0 });
    const { lines, logger } = capture();
    const outage = new RedisOutageLog('commands', logger);
    for (let i = 0; i <= 31; i++) {
      jest.setSystemTime(i * 2_000);
      outage.failed(i % 2 === 0 ? refused : reply('WRONGPASS invalid username-password pair or user is disabled.'));
      expect(outage.refusingCredentials).toBe(i % 2 === 1);
    }
    expect(lines).toEqual([
      'warn commands: ECONNREFUSED: Redis does not answer; reconnecting (logged again each minute it lasts, and once it is back)',
      'warn commands: WRONGPASS: Redis refused the credentials of REDIS_URL; retrying (logged again each minute it lasts, and once they are accepted)',
      'warn commands: WRONGPASS: Redis refuses the credentials of REDIS_URL for 62 s (32 failed attempts); retrying',
    ]);
  });

  it('a server that answers, not in the Redis protocol (ParserError: a wrong port, another service there), is said to be that, minute by minute, never that Redis does not answer', () => {
    jest.useFakeTimers({ now: 0 });
    const { lines, logger } = capture();
    const outage = new RedisOutageLog('commands', logger);
    const garbled = Object.assign(new Error('Protocol error, got "H" as reply type byte'), { name: 'ParserError' });
    const givenUp = Object.assign(new Error('Reached the max retries per request limit (which is 2).'), { name: 'MaxRetriesPerRequestError' });
    for (let t = 0; t <= 62_000; t += 2_000) {
      jest.setSystemTime(t);
      // The commands ioredis gives up meanwhile are the outage's consequence, not another cause.
      outage.failed(t % 4_000 === 0 ? garbled : givenUp);
    }
    expect(outage.currentCause).toBe('protocol');
    jest.setSystemTime(63_000);
    outage.answered();
    expect(outage.currentCause).toBeUndefined();
    expect(lines).toEqual([
      'warn commands: ParserError: the server at REDIS_URL answers, not in the Redis protocol (a wrong host or port? another service listens there); reconnecting (logged again each minute it lasts, and once Redis answers)',
      'warn commands: ParserError: the server at REDIS_URL answers, not in the Redis protocol, for 60 s (31 failed attempts); reconnecting',
      'info commands: Redis answers after 63 s (32 failed attempts)',
    ]);
  });

  it("after the server's non-Redis answer, the writes that meet the socket it closed (EPIPE, ECONNRESET) are the same outage; a refused connect is another cause", () => {
    jest.useFakeTimers({ now: 0 });
    const { lines, logger } = capture();
    const outage = new RedisOutageLog('commands', logger);
    const garbled = Object.assign(new Error('Protocol error, got "H" as reply type byte'), { name: 'ParserError' });
    const closed = (code: string) => Object.assign(new Error(`write ${code}`), { code });
    outage.failed(garbled);
    jest.setSystemTime(100);
    outage.failed(closed('EPIPE'));
    jest.setSystemTime(200);
    outage.failed(closed('ECONNRESET'));
    expect(outage.currentCause).toBe('protocol');
    jest.setSystemTime(2_000);
    outage.failed(refused);
    expect(outage.currentCause).toBe('unreachable');
    expect(lines).toEqual([
      'warn commands: ParserError: the server at REDIS_URL answers, not in the Redis protocol (a wrong host or port? another service listens there); reconnecting (logged again each minute it lasts, and once Redis answers)',
      'warn commands: ECONNREFUSED: Redis does not answer; reconnecting (logged again each minute it lasts, and once it is back)',
    ]);
  });

  it.each([
    ['NOAUTH Authentication required.', 'NOAUTH'],
    ['WRONGPASS invalid username-password pair or user is disabled.', 'WRONGPASS'],
    ['Ready check failed: NOAUTH Authentication required.', 'NOAUTH'],
    ['ERR invalid password', 'ERR'],
    ['ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?', 'ERR'],
    ["NOPERM this user has no permissions to run the 'select' command", undefined],
    ['ERR unknown command', undefined],
    ['connect ECONNREFUSED 127.0.0.1:6379', undefined],
  ])('refusedCredentials(%j) is %s', (message, word) => {
    expect(refusedCredentials(reply(message))).toBe(word);
  });
});

describe('redisAddress', () => {
  it.each([
    ['redis://user:secret@10.0.0.7:6380/2', '10.0.0.7:6380'],
    ['rediss://:secret@cache.internal', 'cache.internal:6379'],
    ['redis://[::1]:7000', '[::1]:7000'],
  ])('%s is %s: host and port, never the user or password', (url, address) => {
    expect(redisAddress(url)).toBe(address);
  });

  it.each([
    // Where ioredis connects: the query's port or host when the URL has none.
    ['redis://cache.internal?port=7000', 'cache.internal:7000'],
    ['redis://cache.internal:6380/0?family=6', 'cache.internal:6380'],
  ])('%s is %s, where ioredis connects', (url, address) => {
    expect(redisAddress(url)).toBe(address);
  });

  it.each([
    // A password with an unescaped '/', '?' or '#' ends the host early: the URL's "host" is then the user name and
    // the "port" the password's first digits (ioredis connects there, and fails).
    'redis://opsuser:5678/qzrest@cache.internal:6379',
    'redis://opsuser:1234#qzrest@cache.internal',
    'redis://opsuser:pa@qz/qzrest@cache.internal:6379',
  ])('%s: no address, when part of the URL after its host looks like a user or password', (url) => {
    const address = redisAddress(url);
    expect(address).toMatch(/^REDIS_URL\b/);
    for (const secret of ['opsuser', '5678', '1234', 'qz']) expect(address).not.toContain(secret);
  });
});
