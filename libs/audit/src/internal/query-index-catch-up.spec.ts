import { Logger } from '@nestjs/common';
import { CATCH_UP_CHUNK_ROWS, QueryIndexCatchUp } from './query-index-catch-up';

const turns = async (n = 5) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

/** A catch-up whose chunks end when the test says so. */
function harness() {
  const chunks: Array<number | null> = [];
  let running = 0;
  let most = 0;
  const ends: Array<() => void> = [];
  const catchUp = new QueryIndexCatchUp(
    (rows) => {
      chunks.push(rows);
      most = Math.max(most, ++running);
      return new Promise<void>((resolve) => ends.push(() => (running--, resolve())));
    },
    new Logger('test'),
  );
  const endChunk = async () => {
    ends.shift()!();
    await turns();
  };
  return { catchUp, chunks, endChunk, most: () => most, inFlight: () => ends.length };
}

describe('QueryIndexCatchUp', () => {
  it('runs chunk after chunk, one at a time, until less than a chunk is pending', async () => {
    const h = harness();
    h.catchUp.noteAppended(1000);
    expect(h.chunks).toEqual([CATCH_UP_CHUNK_ROWS]);
    // Rows appended while a chunk runs are counted for the next ones.
    h.catchUp.noteAppended(300);
    while (h.inFlight() > 0) await h.endChunk();
    // 1,300 rows: five chunks, 20 left for the next one (or query).
    expect(h.chunks).toEqual(Array(5).fill(CATCH_UP_CHUNK_ROWS));
    expect(h.most()).toBe(1);
    h.catchUp.noteAppended(CATCH_UP_CHUNK_ROWS - 21);
    expect(h.chunks).toHaveLength(5);
    h.catchUp.noteAppended(1);
    expect(h.chunks).toHaveLength(6);
  });

  it('starts no chunk once stopped, and stop waits for the one in flight', async () => {
    const h = harness();
    h.catchUp.noteAppended(1000);
    let stopped = false;
    const stop = h.catchUp.stop().then(() => (stopped = true));
    await turns();
    expect(stopped).toBe(false);
    await h.endChunk();
    await stop;
    h.catchUp.noteAppended(1000);
    h.catchUp.kick(null);
    expect(h.chunks).toEqual([CATCH_UP_CHUNK_ROWS]);
  });
});
