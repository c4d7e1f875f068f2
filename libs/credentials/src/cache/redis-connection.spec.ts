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
    ["NOPERM this user has no permissions to run the 'ping' command", undefined, 'Redis refused PING for lack of permission (NOPERM)'],
    ['NOPERM this user has no permissions to access one of the keys used as arguments', undefined, 'Redis refused a command for lack of permission on a key (NOPERM)'],
  ])('%j (%s) is %j: the command and the first word only, never the user or the arguments', (message, command, words) => {
    const said = redisCommandRefusal(reply(message, command));
    expect(said).toBe(words);
    expect(said).not.toContain('MARKER-7c1');
  });

  /**
   * The replies as Redis sends them. 7.0 (seen on 7.0.15 with ACL users): a command's key or channel outside the user's
   * patterns `NOPERM this user has no permissions to access one of the keys|channels used as arguments`; inside a script
   * `ERR The user executing the script can't run this command or subcommand|can't access at least one of the keys
   * mentioned in the command arguments|can't publish to the channel mentioned in the command script: <sha>, on
   * @user_script:1.`. 7.2 and later, and Valkey (acl.c getAclErrorMessage, script.c scriptVerifyACL): `NOPERM User <name>
   * has no permissions to run the '<command>' command`, `NOPERM No permissions to access a key|channel`; inside a script
   * `ERR ACL failure in script: <the same> script: <sha>, on @user_script:1.`.
   */
  it.each([
    ['NOPERM No permissions to access a key', 'eval', 'Redis refused EVAL for lack of permission on a key (NOPERM)'],
    ['NOPERM No permissions to access a channel', 'publish', 'Redis refused PUBLISH for lack of permission on a channel (NOPERM)'],
    ["NOPERM User script-svc-MARKER-7c1 has no permissions to run the 'evalsha' command", 'evalsha', 'Redis refused EVALSHA for lack of permission (NOPERM)'],
    [
      "ERR The user executing the script can't publish to the channel mentioned in the command script: 9ddb5d56e1d5c3a3b21c1aad774273186b4a6d34, on @user_script:1.",
      'evalsha',
      "Redis refused a command in EVALSHA's script for lack of permission on a channel (ERR)",
    ],
    [
      "ERR The user executing the script can't access at least one of the keys mentioned in the command arguments script: 2b607d3eeffe20cb8536f3e513a6fe42580a3d6e, on @user_script:1.",
      'eval',
      "Redis refused a command in EVAL's script for lack of permission on a key (ERR)",
    ],
    [
      "ERR ACL failure in script: User ops-MARKER-7c1 has no permissions to run the 'publish' command script: ee5bed0f, on @user_script:1.",
      'evalsha',
      "Redis refused PUBLISH in EVALSHA's script for lack of permission (ERR)",
    ],
    ['ERR ACL failure in script: No permissions to access a channel script: ee5bed0f, on @user_script:1.', 'evalsha', "Redis refused a command in EVALSHA's script for lack of permission on a channel (ERR)"],
    ['ERR ACL failure in script: No permissions to access a key script: ee5bed0f, on @user_script:1.', 'eval', "Redis refused a command in EVAL's script for lack of permission on a key (ERR)"],
  ])('%j (%s), as Redis 7.0, 7.2+ and Valkey send it, is %j', (message, command, words) => {
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
