import { SystemClock, TransactionRunner } from '@app/common';
import type { DataSource, EntityManager } from 'typeorm';
import { AuditRepository } from './audit.repository';
import { resolveAuditOptions } from './audit.options';
import { AuditWriter } from './audit.writer';
import { AuditUnavailableError } from './errors/audit.errors';
import { AuditEventInput, AuditResult } from './interfaces/audit-event.interface';
import { ChainWriter } from './internal/chain-writer';
import type { InsertableRow } from './internal/row-insert';

/** A chain store whose commits the test releases by hand: "committed" means the transaction returned. */
class SlowChains {
  committed: string[][] = [];
  transactions = 0;
  private gates: Array<{ open: () => void; fail: (e: Error) => void }> = [];
  staged: string[] = [];

  inOwnTransaction<T>(_t: string[], work: (m: EntityManager) => Promise<T>): Promise<T> {
    this.transactions++;
    this.staged = [];
    return work({} as EntityManager).then(
      (r) =>
        new Promise<T>((resolve, reject) => {
          const staged = this.staged;
          this.gates.push({
            open: () => {
              this.committed.push(staged.splice(0));
              resolve(r);
            },
            fail: reject,
          });
        }),
    );
  }

  get waiting(): number {
    return this.gates.length;
  }

  commitNext(): void {
    this.gates.shift()!.open();
  }

  failNext(): void {
    this.gates.shift()!.fail(new Error('connection lost'));
  }
}

function build(failClosed = true) {
  const chains = new SlowChains();
  const rows = {
    head: async () => null,
    heads: async () => new Map(),
    // A failed batch's retry looks for its first row (a failure may come after a commit): these never commit.
    exists: async () => false,
    insert: async (linked: InsertableRow[]) => {
      chains.staged.push(...linked.map((l) => l.row.resource));
    },
  } as unknown as AuditRepository;
  const writer = new AuditWriter(
    rows,
    chains as unknown as ChainWriter,
    resolveAuditOptions({ failClosed, suspicious: { enabled: false }, readBuffer: { batchSize: 3, maxSize: 4, flushIntervalMs: 3_600_000 } }),
    {} as DataSource,
    new SystemClock(),
    undefined,
    {} as TransactionRunner,
  );
  return { writer, chains };
}

const read = (resource: string): AuditEventInput => ({
  action: 'read',
  context: { tenantId: 't1', actor: { id: 'u1' }, correlationId: `req-${resource}` },
  resource,
  result: AuditResult.SUCCESS,
});

const turn = () => new Promise((r) => setImmediate(r));

/** Whether `p` has settled, without waiting for it. */
function tracked(p: Promise<unknown>) {
  const t = { settled: false, error: undefined as unknown };
  p.then(
    () => (t.settled = true),
    (e: unknown) => {
      t.settled = true;
      t.error = e;
    },
  );
  return t;
}

describe('AuditWriter.recordRead group commit', () => {
  it('resolves only after the batch holding its row has committed, with no wait for the interval', async () => {
    const { writer, chains } = build();
    const p = tracked(writer.recordRead(read('a')));
    await turn();
    await turn();
    expect(chains.waiting).toBe(1); // the batch was sent at once (interval is an hour)
    expect(chains.committed).toEqual([]);
    expect(p.settled).toBe(false); // inserted but not committed: the value must not be served yet
    chains.commitNext();
    await turn();
    expect(p).toEqual({ settled: true, error: undefined });
    expect(chains.committed).toEqual([['a']]);
  });

  it('puts reads of one turn in one batch, and reads arriving during a flush in the next one', async () => {
    const { writer, chains } = build();
    const first = ['a', 'b', 'c'].map((r) => tracked(writer.recordRead(read(r))));
    await turn();
    await turn();
    expect(chains.transactions).toBe(1);
    const second = ['d', 'e'].map((r) => tracked(writer.recordRead(read(r))));
    await turn();
    expect(chains.transactions).toBe(1); // one flush at a time: d and e wait for the next batch
    chains.commitNext();
    await turn();
    await turn();
    expect(first.every((p) => p.settled && !p.error)).toBe(true);
    expect(second.some((p) => p.settled)).toBe(false);
    expect(chains.transactions).toBe(2);
    chains.commitNext();
    await turn();
    expect(second.every((p) => p.settled && !p.error)).toBe(true);
    expect(chains.committed).toEqual([['a', 'b', 'c'], ['d', 'e']]);
    expect(writer.stats).toMatchObject({ readsAccepted: 5, readsFlushed: 5, bufferDepth: 0, healthy: true });
  });

  it('fails closed: a failed batch rejects its readers with AuditUnavailableError, keeps their rows and writes them on retry', async () => {
    const { writer, chains } = build();
    const readers = ['a', 'b'].map((r) => tracked(writer.recordRead(read(r))));
    await turn();
    await turn();
    chains.failNext();
    await turn();
    await turn();
    for (const p of readers) expect(p.error).toBeInstanceOf(AuditUnavailableError);
    expect(writer.healthy).toBe(false);
    await expect(writer.recordRead(read('refused'))).rejects.toMatchObject({ code: 5003 });
    expect(writer.stats).toMatchObject({ bufferDepth: 2, readsRejected: 3 });

    const retry = writer.flush(); // what the interval does
    await turn();
    chains.commitNext();
    await retry;
    expect(writer.healthy).toBe(true);
    expect(chains.committed).toEqual([['a', 'b']]); // nothing dropped; the refused read was never accepted
  });

  it('rejects readers still waiting for their batch when an earlier batch fails, and readers waiting for space', async () => {
    const { writer, chains } = build();
    const all = ['a', 'b', 'c', 'd', 'e'].map((r) => tracked(writer.recordRead(read(r)))); // maxSize 4: e waits for space
    await turn();
    await turn();
    expect(writer.stats).toMatchObject({ bufferDepth: 4, bufferWaiters: 1 });
    chains.failNext(); // the batch a, b, c
    await turn();
    await turn();
    for (const p of all) expect(p.error).toBeInstanceOf(AuditUnavailableError);
    expect(writer.stats.bufferDepth).toBe(4); // d was buffered, not yet in a batch: kept too
  });

  it('with failClosed off, a failed batch lets its readers go on (rows kept, retried)', async () => {
    const { writer, chains } = build(false);
    const p = tracked(writer.recordRead(read('a')));
    await turn();
    await turn();
    chains.failNext();
    await turn();
    await turn();
    expect(p).toEqual({ settled: true, error: undefined });
    await expect(writer.recordRead(read('b'))).resolves.toBeUndefined(); // failing: accepted once buffered
    const retry = writer.flush();
    await turn();
    chains.commitNext();
    await retry;
    expect(chains.committed).toEqual([['a', 'b']]);
  });
});
