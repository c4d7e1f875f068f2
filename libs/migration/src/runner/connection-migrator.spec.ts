import { randomBytes } from 'node:crypto';
import { resolveMigrationOptions } from '../migration.options';
import { AimdLimiter } from './aimd-limiter';
import { ConnectionMigrator } from './connection-migrator';

/** Unit: the budget every vault call of a migration goes through (no other collaborator is used). */
describe('ConnectionMigrator.withBudget', () => {
  const options = resolveMigrationOptions({ keys: [randomBytes(32).toString('hex')], concurrency: { initial: 8, max: 8, slowCallMs: 0 } });
  const migrator = () => new ConnectionMigrator(null as never, null as never, null as never, null as never, options, null as never);
  const tick = () => new Promise((r) => setTimeout(r, 5));

  /** Calls that log when they start and wait until released. */
  const gatedCalls = (n: number, failFirst = false) => {
    const started: number[] = [];
    const release: (() => void)[] = [];
    const calls = Array.from({ length: n }, (_, i) => () => {
      started.push(i);
      return new Promise<number>((resolve, reject) => release.push(() => (i === 0 && failFirst ? reject(new Error('vault down')) : resolve(i))));
    });
    return { started, release, calls };
  };

  it("runs a process's first vault call alone (a cold SDK client would send it without its body), then concurrently", async () => {
    const m = migrator();
    const limiter = new AimdLimiter(options.concurrency);
    const { started, release, calls } = gatedCalls(4);
    const results = calls.map((c) => m.withBudget(limiter, c));
    await tick();
    expect(started).toEqual([0]);
    release[0]();
    await tick();
    expect(started).toEqual([0, 1, 2, 3]);
    release.slice(1).forEach((r) => r());
    expect(await Promise.all(results)).toEqual([0, 1, 2, 3]);

    // Warm: later calls no longer wait for one another.
    const later = gatedCalls(3);
    const more = later.calls.map((c) => m.withBudget(limiter, c));
    await tick();
    expect(later.started).toEqual([0, 1, 2]);
    later.release.forEach((r) => r());
    await Promise.all(more);
  });

  it('a failed first call still lets the others run, and only it fails', async () => {
    const m = migrator();
    const { started, release, calls } = gatedCalls(3, true);
    const results = calls.map((c) => m.withBudget(new AimdLimiter(options.concurrency), c));
    await tick();
    expect(started).toEqual([0]);
    release[0]();
    await expect(results[0]).rejects.toThrow('vault down');
    await tick();
    expect(started).toEqual([0, 1, 2]);
    release.slice(1).forEach((r) => r());
    expect(await Promise.all(results.slice(1))).toEqual([1, 2]);
  });
});
