import { z } from 'zod';
import { ManualClock } from '../clock';
import { clockOptionSchema, cronExpressionSchema, timeZoneSchema, whenFieldsParsed } from './option-schemas';
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

  it("tells an unknown key which known one was meant: one slip away, or the job option's other spelling (cron / cronTime)", () => {
    const jobs = z
      .object({
        job: z.object({ enabled: z.boolean().optional(), cronTime: z.string().optional() }).strict().optional(),
        retention: z.object({ cron: z.string().optional() }).strict().prefault({}),
      })
      .strict();
    const problems = (input: unknown) => {
      try {
        resolveOptions(jobs, input, make);
      } catch (e) {
        return (e as TestConfigError).problems;
      }
      return [];
    };
    expect(problems({ job: { cron: '* * * * *' } })).toEqual([{ path: 'job', message: 'Unrecognized key: "cron"; did you mean "cronTime"?' }]);
    expect(problems({ retention: { cronTime: '* * * * *' } })).toEqual([{ path: 'retention', message: 'Unrecognized key: "cronTime"; did you mean "cron"?' }]);
    expect(problems({ job: { enabeld: true, cronTme: 'x', zzz: 1 } })[0].message).toBe('Unrecognized keys: "enabeld", "cronTme", "zzz"; did you mean "enabled" for "enabeld", "cronTime" for "cronTme"?');
    // Nothing near: zod's message alone.
    expect(problems({ jobs: {} })).toEqual([{ path: '(options)', message: 'Unrecognized key: "jobs"; did you mean "job"?' }]);
    expect(problems({ nothingLikeIt: 1 })).toEqual([{ path: '(options)', message: 'Unrecognized key: "nothingLikeIt"' }]);
  });

  it('tells an isGlobal returned by a forRootAsync factory where it goes', () => {
    // forRoot({ isGlobal }) never passes it on (an extra of the module builder): at the root it came from the factory.
    const problems = (input: unknown) => {
      try {
        resolveOptions(schema, input, (p) => new TestConfigError(p));
      } catch (e) {
        return (e as TestConfigError).problems;
      }
      return [];
    };
    expect(problems({ isGlobal: true, size: 3 })).toEqual([
      { path: '(options)', message: 'Unrecognized key: "isGlobal"; isGlobal is no option the factory returns: pass it beside useFactory, forRootAsync({ isGlobal: true, useFactory })' },
    ]);
    expect(problems({ isGlobal: true, sizee: 3 })[0].message).toBe(
      'Unrecognized keys: "isGlobal", "sizee"; did you mean "size" for "sizee"?; isGlobal is no option the factory returns: pass it beside useFactory, forRootAsync({ isGlobal: true, useFactory })',
    );
  });
});

describe('option schemas', () => {
  it('accept cron expressions, IANA zones and clocks, and refuse the rest', () => {
    expect(cronExpressionSchema().safeParse('*/5 * * * *').success).toBe(true);
    expect(cronExpressionSchema().safeParse('0 * * * * *').success).toBe(true);
    expect(cronExpressionSchema().safeParse('hourly').error?.issues[0].message).toBe('is not a valid cron expression');
    expect(timeZoneSchema().safeParse('Europe/Paris').success).toBe(true);
    expect(timeZoneSchema().safeParse('Mars/Olympus').error?.issues[0].message).toBe('is not an IANA time zone');
    // Not a string, or empty: the same one problem, in its own words (zod's would be "Invalid input: expected string…").
    expect(timeZoneSchema().safeParse(5).error?.issues.map((i) => i.message)).toEqual(['is not an IANA time zone']);
    expect(timeZoneSchema().safeParse('').error?.issues.map((i) => i.message)).toEqual(['is not an IANA time zone']);
    expect(clockOptionSchema().safeParse(new ManualClock()).success).toBe(true);
    expect(clockOptionSchema().safeParse({}).success).toBe(false);
  });
});

describe('whenFieldsParsed', () => {
  const limits = z
    .object({
      label: z.string().default('x'),
      buffer: z.object({ max: z.number().min(1).default(10), batch: z.number().min(1).default(5), flushMs: z.number().default(1) }).strict().prefault({}),
    })
    .strict()
    .superRefine((o, ctx) => {
      if (o.buffer.batch > o.buffer.max) ctx.addIssue({ code: 'custom', path: ['buffer', 'batch'], message: 'must be ≤ buffer.max' });
    }, whenFieldsParsed('buffer.batch', 'buffer.max'));
  const problems = (input: unknown) => limits.safeParse(input).error?.issues.map((i) => `${optionPath(i.path)}: ${i.message}`) ?? [];
  const crossField = 'buffer.batch: must be ≤ buffer.max';

  it('runs the check next to problems elsewhere: a wrong type, a sibling field, an unknown key', () => {
    expect(problems({ buffer: { max: 2, batch: 3 } })).toEqual([crossField]);
    expect(problems({ label: 7, buffer: { max: 2, batch: 3 } })).toContain(crossField);
    expect(problems({ buffer: { max: 2, batch: 3, flushMs: 'soon' } })).toContain(crossField);
    expect(problems({ typo: 1, buffer: { max: 2, batch: 3 } })).toContain(crossField);
  });

  it('skips it when a field it reads, or the object holding it, failed: no comparison of raw input', () => {
    expect(problems({ buffer: { max: 'two', batch: 3 } })).not.toContain(crossField);
    expect(problems({ buffer: { max: 0, batch: 3 } })).not.toContain(crossField);
    expect(problems({ buffer: 'big' })).not.toContain(crossField);
  });
});
