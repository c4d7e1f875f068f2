import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IndexSet } from './audit-index-sets';
import type { CacheFill } from './server-main';

/**
 * One server under test in a process of its own (the reference host, the host with a no-op audit, or a
 * bare Fastify route), so the load generator, the vault and the other targets never share its event loop.
 * The parent gets its URLs over IPC; `stop()` flushes the audit log and closes the app.
 */
export type ServerKind = 'host' | 'host-noop-audit' | 'bare-fastify';

export interface ServerSpec {
  kind: ServerKind;
  /** For the host kinds: the vault, the database and the API key. */
  vaultUrl?: string;
  caCertPath?: string;
  database?: { type: 'sqlite' } | { type: 'postgres'; url: string; schema: string };
  apiKeyEntry?: string;
  apiKey?: string;
  /** Host log level (`info` writes the request log, to /dev/null). @default 'info' */
  logLevel?: string;
  /** Bytes of the stored credential value, also the bare route's JSON size. @default 56 */
  valueBytes?: number;
  /** The host's CACHE_MAX_ENTRIES (for the cache memory figure). */
  cacheMaxEntries?: number;
  /** The audit table's query indexes once the host has migrated (`audit-index-sets`). @default 'all' */
  auditIndexes?: IndexSet;
}

/** What a started server serves: GET paths ready to load, and the headers they need. */
export interface ServerReady {
  base: string;
  headers: Record<string, string>;
  paths: { value?: string; metadata?: string; live: string; bare?: string };
}

export class ServerProcess {
  private constructor(
    private readonly child: ChildProcess,
    readonly ready: ServerReady,
  ) {}

  /** Starts a server; `execArgv` e.g. `['--cpu-prof', '--cpu-prof-dir=...']` to profile it. */
  static async start(spec: ServerSpec, execArgv: string[] = []): Promise<ServerProcess> {
    const child = fork(join(__dirname, 'server-main.js'), [JSON.stringify(spec)], { execArgv, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const ready = await new Promise<ServerReady>((resolve, reject) => {
      child.once('message', (m) => resolve(m as ServerReady));
      child.once('exit', (code) => reject(new Error(`server ${spec.kind} exited (${code}) before it was ready`)));
    });
    return new ServerProcess(child, ready);
  }

  url(path: keyof ServerReady['paths']): string {
    const p = this.ready.paths[path];
    if (!p) throw new Error(`this server does not serve ${path}`);
    return this.ready.base + p;
  }

  /**
   * Starts the CPU profiler inside the server (so start-up and warm-up stay out of the profile), or with
   * `alloc` V8's sampling heap profiler, counting what is allocated (collected or not).
   */
  profileStart(kind: 'cpu' | 'alloc' = 'cpu'): Promise<void> {
    return this.request({ profileStart: kind === 'alloc' ? 'alloc' : true }, 'profiling');
  }

  /** Stops the profiler and writes the `.cpuprofile` (or `.heapprofile`) to `path`. */
  profileStop(path: string): Promise<void> {
    return this.request({ profileStop: path }, 'profiled');
  }

  /** Fills the host's credential cache with `entries` synthetic credentials; RSS (after GC) before and after. */
  fillCache(entries: number, valueBytes: number): Promise<CacheFill> {
    return new Promise((resolve) => {
      const on = (m: unknown) => {
        const filled = (m as { filled?: CacheFill }).filled;
        if (!filled) return;
        this.child.off('message', on);
        resolve(filled);
      };
      this.child.on('message', on);
      this.child.send({ fillCache: { entries, valueBytes } });
    });
  }

  /** The server process's CPU time so far (user + system, µs). */
  cpuUs(): Promise<number> {
    return new Promise((resolve) => {
      const on = (m: unknown) => {
        const cpu = (m as { cpu?: NodeJS.CpuUsage }).cpu;
        if (!cpu) return;
        this.child.off('message', on);
        resolve(cpu.user + cpu.system);
      };
      this.child.on('message', on);
      this.child.send('cpu');
    });
  }

  /** The real audit's read rows written so far (flushed first); null for a server that audits nothing. */
  auditedReads(): Promise<number | null> {
    return new Promise((resolve) => {
      const on = (m: unknown) => {
        if (!m || typeof m !== 'object' || !('audited' in m)) return;
        this.child.off('message', on);
        resolve((m as { audited: number | null }).audited);
      };
      this.child.on('message', on);
      this.child.send('audited');
    });
  }

  private request(message: object, answer: string): Promise<void> {
    return new Promise((resolve) => {
      const on = (m: unknown) => {
        if (m !== answer) return;
        this.child.off('message', on);
        resolve();
      };
      this.child.on('message', on);
      this.child.send(message);
    });
  }

  /** Flushes (audit) and exits; resolves when the process is gone (a CPU profile is written by then). */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.send('stop');
    await exited;
  }
}

/** A scratch directory for SQLite files of the hosts started by one bench run. */
export function scratchDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
