import { type ChildProcess, execFile, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { promisify } from 'node:util';

/**
 * The soak's open-loop load generator, in a process of its own: its clock and its latencies are not
 * the test runner's (a jest worker carries the in-process vault and a heap grown by earlier files,
 * whose pauses were counted as the host's latency and as the load's lag behind schedule). Only Node's
 * built-ins here: under jest this one file is compiled on its own with swc.
 */
export interface OpenLoopSpec {
  baseUrl: string;
  apiKey: string;
  /** Credentials to read and rotate. */
  ids: string[];
  ratePerSec: number;
  durationMs: number;
}

export interface OpenLoopResult {
  /** Per answered request: when it was due to start (ms into the run) and its latency (ms). */
  samples: { at: number; ms: number }[];
  scheduled: number;
  errors: number;
  examples: string[];
  /** How far behind schedule the latest send was, at worst (ms). */
  maxLagMs: number;
  maxInFlight: number;
  /** The sender's own event-loop delay, at worst (ms): a pause of the load generator, not of the host. */
  loopDelayMaxMs: number;
  /** When the last request was sent (ms into the run): the load ends there, its answers drain after. */
  sentMs: number;
  runMs: number;
}

type ToChild = OpenLoopSpec;
type FromChild = { type: 'started'; at: number } | { type: 'done'; result: OpenLoopResult } | { type: 'failed'; message: string };

/**
 * Runs the load in a child process; `onStart` is called once its run began, with when it began on this
 * process's `performance.now()` clock (the child's own reading, not when its message got here: this
 * process's loop may be paused then), the origin of the samples' `at` and `sentMs`.
 */
export async function runOpenLoop(spec: OpenLoopSpec, onStart: (t0: number) => void): Promise<OpenLoopResult> {
  const { file, remove } = await senderJs();
  let child: ChildProcess | undefined;
  try {
    child = fork(file, [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const sender = child;
    return await new Promise<OpenLoopResult>((resolvePromise, reject) => {
      let settled = false;
      sender.on('message', (m: FromChild) => {
        if (m.type === 'started') {
          try {
            return onStart(m.at - performance.timeOrigin);
          } catch (e) {
            return reject(e as Error); // the child is stopped below, not left sending load
          }
        }
        settled = true;
        if (m.type === 'done') resolvePromise(m.result);
        else reject(new Error(`open-loop sender: ${m.message}`));
      });
      sender.once('error', reject);
      sender.once('exit', (code, signal) => {
        if (!settled) reject(new Error(`open-loop sender exited (${signal ?? code}) before its result`));
      });
      sender.send(spec satisfies ToChild);
    });
  } finally {
    // Whatever ended the wait, no load outlives it (a child that answered exits by itself).
    if (child && child.exitCode === null && child.signalCode === null) child.kill();
    remove();
  }
}

/** This file as JavaScript: itself once compiled (dist/), else compiled alone with swc into a temp dir. */
export async function senderJs(): Promise<{ file: string; remove: () => void }> {
  if (__filename.endsWith('.js')) return { file: __filename, remove: () => undefined };
  const root = resolve(__dirname, '..', '..');
  const dir = mkdtempSync(join(tmpdir(), 'cv-open-loop-'));
  const file = join(dir, 'open-loop-sender.js');
  try {
    await promisify(execFile)(join(root, 'node_modules/.bin/swc'), [__filename, '-o', file, '--config-file', '.swcrc'], { cwd: root, timeout: 60_000 });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return { file, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * The load: request n is due at n / rate s into the run, and every one due within the duration is
 * sent, however late the sender's own clock wakes; 80% value reads, 10% rotations, 5% metadata reads,
 * 5% list pages. A rotation of a credential already being rotated (409 by design) becomes a read.
 */
async function send(spec: OpenLoopSpec, started: (at: number) => void): Promise<OpenLoopResult> {
  const { baseUrl, apiKey, ids, ratePerSec, durationMs } = spec;
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${baseUrl}${path}`, {
      method,
      headers: { 'x-api-key': apiKey, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    return { status: res.status, text: await res.text() };
  };
  const samples: { at: number; ms: number }[] = [];
  const examples: string[] = [];
  const example = (s: string) => {
    if (examples.length < 10) examples.push(s);
  };
  let errors = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const writing = new Set<string>();
  const t0Run = performance.now();
  const one = async (n: number) => {
    const id = ids[(n * 7919) % ids.length];
    const dice = n % 20 >= 16 && n % 20 < 18 && writing.has(id) ? 0 : n % 20;
    if (dice >= 16 && dice < 18) writing.add(id);
    const t0 = performance.now();
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    try {
      const res =
        dice < 16
          ? await call('GET', `/v1/credentials/${id}/value`)
          : dice < 18
            ? await call('POST', `/v1/credentials/${id}/rotate`, { value: `soakM${randomBytes(12).toString('hex')}` })
            : dice < 19
              ? await call('GET', `/v1/credentials/${id}`)
              : await call('GET', '/v1/credentials?limit=20');
      if (res.status >= 300) {
        errors++;
        example(`${res.status} ${res.text.slice(0, 160)}`);
      }
    } catch (e) {
      errors++;
      const cause = (e as Error & { cause?: { code?: string; message?: string } }).cause;
      example(`${(e as Error).message}${cause ? ` (${cause.code ?? cause.message})` : ''}`);
    } finally {
      inFlight--;
      if (dice >= 16 && dice < 18) writing.delete(id);
    }
    samples.push({ at: t0 - t0Run, ms: performance.now() - t0 });
  };
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  started(performance.timeOrigin + t0Run); // wall-clock ms: comparable across processes
  const scheduled = Math.ceil((durationMs * ratePerSec) / 1000);
  const dueAt = (n: number) => (n * 1000) / ratePerSec;
  const pending: Promise<void>[] = [];
  let sent = 0;
  let maxLagMs = 0;
  while (sent < scheduled) {
    const now = performance.now() - t0Run;
    const due = Math.min(scheduled, Math.floor((now * ratePerSec) / 1000) + 1);
    if (sent < due) maxLagMs = Math.max(maxLagMs, now - dueAt(sent));
    while (sent < due) pending.push(one(sent++));
    await new Promise((r) => setTimeout(r, 5));
    if (pending.length > 5000) pending.splice(0, pending.length - 1000);
  }
  const sentMs = performance.now() - t0Run;
  await Promise.all(pending);
  loop.disable();
  return { samples, scheduled, errors, examples, maxLagMs, maxInFlight, loopDelayMaxMs: loop.max / 1e6, sentMs, runMs: performance.now() - t0Run };
}

if (require.main === module) {
  // The parent gone (killed, crashed, exited mid-run): its IPC channel closes, and the load stops with it.
  process.once('disconnect', () => process.exit(0));
  process.once('message', (spec: ToChild) => {
    const reply = (m: FromChild) => new Promise<void>((r) => process.send!(m, () => r()));
    send(spec, (at) => void reply({ type: 'started', at }))
      .then((result) => reply({ type: 'done', result }))
      .catch((e: Error) => reply({ type: 'failed', message: e.message }))
      .finally(() => process.disconnect());
  });
}
