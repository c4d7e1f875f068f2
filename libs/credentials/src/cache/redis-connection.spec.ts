import { redisCommandRefusal } from './redis-connection';

/** An error reply as ioredis gives it: a ReplyError, the reply as its message, the command it answered. */
const reply = (message: string, command?: string) => Object.assign(new Error(message), { name: 'ReplyError', ...(command ? { command: { name: command, args: ['MARKER-7c1'] } } : {}) });

describe('redisCommandRefusal', () => {
  it.each([
    ["NOPERM this user has no permissions to run the 'publish' command", 'publish', 'Redis refused PUBLISH for lack of permission (NOPERM)'],
    ["NOPERM User ops-MARKER-7c1 has no permissions to run the 'evalsha' command", 'evalsha', 'Redis refused EVALSHA for lack of permission (NOPERM)'],
    ['NOPERM this user has no permissions to access one of the keys used as arguments', 'set', 'Redis refused SET for lack of permission on a key (NOPERM)'],
    ['NOPERM this user has no permissions to access one of the channels used as arguments', 'publish', 'Redis refused PUBLISH for lack of permission on a channel (NOPERM)'],
    ["ERR The user executing the script can't run this command or subcommand script: ee5bed0f, on @user_script:1.", 'eval', "Redis refused a command in EVAL's script for lack of permission (ERR)"],
    ["NOPERM User ops has no permissions to run the 'set' command script: ee5bed0f, on @user_script:1.", 'evalsha', "Redis refused a command in EVALSHA's script for lack of permission (NOPERM)"],
    ["NOPERM this user has no permissions to run the 'ping' command", undefined, 'Redis refused PING for lack of permission (NOPERM)'],
    ['NOPERM this user has no permissions to access one of the keys used as arguments', undefined, 'Redis refused a command for lack of permission on a key (NOPERM)'],
  ])('%j (%s) is %j: the command and the first word only, never the user or the arguments', (message, command, words) => {
    const said = redisCommandRefusal(reply(message, command));
    expect(said).toBe(words);
    expect(said).not.toContain('MARKER-7c1');
  });

  it.each([
    ['ERR unknown command', 'foo'],
    ['WRONGPASS invalid username-password pair or user is disabled.', 'auth'],
    ['connect ECONNREFUSED 127.0.0.1:6379', undefined],
  ])('%j is no refusal for lack of permission', (message, command) => {
    expect(redisCommandRefusal(reply(message, command))).toBeUndefined();
  });
});
