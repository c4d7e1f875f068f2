import { ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/** What the client process answers for one call (bytes fields as base64). */
export interface GrpcReply<T = any> {
  response?: T;
  error?: {
    code: number;
    details: string;
    /** Plain trailing metadata (e.g. `cv-error-code`). */
    trailers: Record<string, string>;
    /** The google.rpc.Status of `grpc-status-details-bin`, its details unpacked (`type` + fields). */
    status?: { code: number; message: string; details: ({ type: string } & Record<string, any>)[] };
  };
  /** The answer's initial metadata (text entries; none when an error is answered alone). */
  headers?: Record<string, string>;
  /** The answer's trailing metadata (text entries), also on success. */
  trailers?: Record<string, string>;
}

/**
 * The keys API's gRPC client, running in another process (`node test/support/grpc-keys-client.mjs`):
 * a real grpc-js channel from outside the host, one JSON line per call over its stdin/stdout.
 */
export class GrpcKeysClient {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly pending = new Map<number, (reply: GrpcReply) => void>();
  private nextId = 1;
  private stderr = '';

  constructor(address: string) {
    this.child = spawn(process.execPath, [join(__dirname, 'grpc-keys-client.mjs'), address, join(__dirname, '../../proto')], { stdio: 'pipe' });
    this.child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      const { id, ...reply } = JSON.parse(line) as GrpcReply & { id: number };
      this.pending.get(id)?.(reply);
      this.pending.delete(id);
    });
    this.child.on('exit', (code) => {
      for (const resolve of this.pending.values()) resolve({ error: { code: -1, details: `client process exited (${code}): ${this.stderr}`, trailers: {} } });
      this.pending.clear();
    });
  }

  call<T = any>(method: string, request: Record<string, unknown>, metadata: Record<string, string> = {}, deadlineMs?: number): Promise<GrpcReply<T>> {
    return this.send({ method, request, metadata, deadlineMs });
  }

  /** Calls `path` (`/pkg.Service/Method`) with `message` as the request's bytes, protobuf or not. */
  callRaw(path: string, message: Buffer, metadata: Record<string, string> = {}): Promise<GrpcReply<{ bytes: number }>> {
    return this.send({ method: path, request: {}, metadata, raw: message.toString('base64') });
  }

  private send<T>(call: Record<string, unknown>): Promise<GrpcReply<T>> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.child.stdin.write(`${JSON.stringify({ id, ...call })}\n`);
    });
  }

  /** The child's pid: proof the calls leave the test process. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin.end();
    await exited;
  }
}

/** A TCP port free right now on 127.0.0.1 (GRPC_PORT has no "any free port"). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
