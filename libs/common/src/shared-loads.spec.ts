import { SharedLoad, SharedLoads } from './shared-loads';

class Left extends Error {}

/** A load the test ends by hand; it sees its signal but does not stop on it (as a database query would not). */
function manualLoad() {
  const runs: Array<{ flight: SharedLoad; resolve: (v: string) => void; reject: (e: Error) => void }> = [];
  const load = jest.fn((flight: SharedLoad) => new Promise<string>((resolve, reject) => runs.push({ flight, resolve, reject })));
  return { load, runs };
}

const settled = async <T>(p: Promise<T>) => {
  let state: 'pending' | 'resolved' | 'rejected' = 'pending';
  p.then(
    () => (state = 'resolved'),
    () => (state = 'rejected'),
  );
  await new Promise((r) => setImmediate(r));
  return state;
};

describe('SharedLoads', () => {
  const loads = () => new SharedLoads<string>(() => new Left('the caller left'));

  it('concurrent callers of one key share one load; other keys load on their own', async () => {
    const shared = loads();
    const { load, runs } = manualLoad();
    const a = Array.from({ length: 5 }, () => shared.join('k', load));
    const other = shared.join('other', load);
    expect(load).toHaveBeenCalledTimes(2);
    runs[0].resolve('v');
    runs[1].resolve('w');
    expect(await Promise.all(a)).toEqual(Array(5).fill('v'));
    expect(await other).toBe('w');
    expect(shared.has('k')).toBe(false);
  });

  it('a caller who leaves stops waiting at once; the others still get the value, and the load is not aborted', async () => {
    const shared = loads();
    const { load, runs } = manualLoad();
    const leaving = new AbortController();
    const gone = shared.join('k', load, leaving.signal);
    const staying = shared.join('k', load, new AbortController().signal);
    const noSignal = shared.join('k', load);
    leaving.abort();
    await expect(gone).rejects.toBeInstanceOf(Left);
    expect(runs[0].flight.signal.aborted).toBe(false);
    expect(runs[0].flight.current).toBe(true);
    runs[0].resolve('v');
    expect(await staying).toBe('v');
    expect(await noSignal).toBe('v');
    expect(load).toHaveBeenCalledTimes(1);
  });

  it('the load is aborted only once every caller has left, and a caller who comes after starts a fresh load', async () => {
    const shared = loads();
    const { load, runs } = manualLoad();
    const callers = [new AbortController(), new AbortController(), new AbortController()];
    const waits = callers.map((c) => shared.join('k', load, c.signal));
    callers[0].abort();
    callers[1].abort();
    expect(runs[0].flight.signal.aborted).toBe(false);
    callers[2].abort();
    expect((await Promise.allSettled(waits)).map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(runs[0].flight.signal.aborted).toBe(true);
    expect(runs[0].flight.current).toBe(false);

    // The abandoned load has not settled (it ignores its signal): a new caller must not join it.
    const late = shared.join('k', load, new AbortController().signal);
    expect(load).toHaveBeenCalledTimes(2);
    runs[0].reject(new Error('aborted'));
    expect(await settled(late)).toBe('pending');
    runs[1].resolve('fresh');
    expect(await late).toBe('fresh');
  });

  it('a caller without a signal keeps the load going whoever else leaves', async () => {
    const shared = loads();
    const { load, runs } = manualLoad();
    const leaving = new AbortController();
    const kept = shared.join('k', load);
    const gone = shared.join('k', load, leaving.signal);
    leaving.abort();
    await expect(gone).rejects.toBeInstanceOf(Left);
    expect(runs[0].flight.signal.aborted).toBe(false);
    runs[0].resolve('v');
    expect(await kept).toBe('v');
  });

  it('a caller who has already left starts nothing and joins nothing', async () => {
    const shared = loads();
    const { load } = manualLoad();
    await expect(shared.join('k', load, AbortSignal.abort())).rejects.toBeInstanceOf(Left);
    expect(load).not.toHaveBeenCalled();
    expect(shared.has('k')).toBe(false);
  });

  it('a failure is every waiting caller\'s, and the next caller loads again', async () => {
    const shared = loads();
    const { load, runs } = manualLoad();
    const waits = [shared.join('k', load), shared.join('k', load, new AbortController().signal)];
    runs[0].reject(new Error('boom'));
    expect((await Promise.allSettled(waits)).map((r) => (r.status === 'rejected' ? (r.reason as Error).message : r.value))).toEqual(['boom', 'boom']);
    const again = shared.join('k', load);
    runs[1].resolve('v');
    expect(await again).toBe('v');
  });

  it('a load that throws at once fails its callers like one that rejects', async () => {
    const shared = loads();
    const load = () => {
      throw new Error('sync');
    };
    await expect(shared.join('k', load)).rejects.toThrow('sync');
    expect(shared.has('k')).toBe(false);
  });

  it('forget detaches a load: its callers still get its result, a later caller starts another', async () => {
    const shared = loads();
    const { load, runs } = manualLoad();
    const before = shared.join('k', load);
    shared.forget('k');
    expect(runs[0].flight.current).toBe(false);
    const after = shared.join('k', load);
    expect(load).toHaveBeenCalledTimes(2);
    runs[0].resolve('old');
    expect(await before).toBe('old');
    // The detached load settling does not drop the one that replaced it.
    const third = shared.join('k', load);
    expect(load).toHaveBeenCalledTimes(2);
    runs[1].resolve('new');
    expect(await after).toBe('new');
    expect(await third).toBe('new');
  });

  it('forgetAll detaches every load', async () => {
    const shared = loads();
    const { load, runs } = manualLoad();
    void shared.join('a', load);
    void shared.join('b', load);
    shared.forgetAll();
    expect([...shared.keys()]).toEqual([]);
    expect(runs.map((r) => r.flight.current)).toEqual([false, false]);
    runs.forEach((r) => r.resolve('v'));
  });
});
