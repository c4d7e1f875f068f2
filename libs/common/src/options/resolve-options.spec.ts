import { z } from 'zod';
import { ManualClock } from '../clock';
import { clockOptionSchema, cronExpressionSchema, timeZoneSchema } from './option-schemas';
import { describeProblems, OptionsProblem, optionPath, resolveOptions } from './resolve-options';

class TestConfigError extends Error {
  constructor(readonly problems: OptionsProblem[]) {
    super(`Invalid TestModule options — ${describeProblems(problems).join('; ')}`);
  }
}

const schema = z
  .object({
    size: z.number().int().min(1).default(10),
    mode: z.enum(['a', 'b']).default('a'),
    secret: z.string().regex(/^[0-9]+$/, 'must be digits').optional(),
    nested: z.object({ ms: z.number().min(0).default(5) }).strict().prefault({}),
  })
  .strict();

describe('resolveOptions', () => {
  const make = (p: OptionsProblem[]) => new TestConfigError(p);

  it('applies defaults (also for undefined input)', () => {
    expect(resolveOptions(schema, undefined, make)).toEqual({ size: 10, mode: 'a', nested: { ms: 5 } });
    expect(resolveOptions(schema, { size: 3, nested: { ms: 0 } }, make)).toEqual({ size: 3, mode: 'a', nested: { ms: 0 } });
  });

  it('throws ONE typed error listing every problem by path, never the offending values', () => {
    const input = { size: 0, mode: 'hunter2-mode', secret: 'hunter2-secret', nested: { ms: -1, extra: 'hunter2-extra' }, typo: 1 };
    const err = (() => {
      try {
        resolveOptions(schema, input, make);
      } catch (e) {
        return e as TestConfigError;
      }
    })();
    expect(err).toBeInstanceOf(TestConfigError);
    expect(err!.problems.map((p) => p.path).sort()).toEqual(['(options)', 'mode', 'nested', 'nested.ms', 'secret', 'size']);
    expect(err!.problems.find((p) => p.path === 'secret')?.message).toBe('must be digits');
    expect(err!.message).not.toMatch(/hunter2/);
    expect(JSON.stringify(err!.problems)).not.toMatch(/hunter2/);
  });

  it('names the root (options) when the input is not an object', () => {
    expect(optionPath([])).toBe('(options)');
    expect(optionPath(['a', 0, 'b'])).toBe('a.0.b');
    expect(() => resolveOptions(schema, 'nope', make)).toThrow(/\(options\): /);
  });
});

describe('option schemas', () => {
  it('accept cron expressions, IANA zones and clocks, and refuse the rest', () => {
    expect(cronExpressionSchema().safeParse('*/5 * * * *').success).toBe(true);
    expect(cronExpressionSchema().safeParse('0 * * * * *').success).toBe(true);
    expect(cronExpressionSchema().safeParse('hourly').error?.issues[0].message).toBe('is not a valid cron expression');
    expect(timeZoneSchema().safeParse('Europe/Paris').success).toBe(true);
    expect(timeZoneSchema().safeParse('Mars/Olympus').error?.issues[0].message).toBe('is not an IANA time zone');
    expect(clockOptionSchema().safeParse(new ManualClock()).success).toBe(true);
    expect(clockOptionSchema().safeParse({}).success).toBe(false);
  });
});
