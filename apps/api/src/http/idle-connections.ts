import type { Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';

/** How long a kept-alive connection must stay silent in the drain before it is closed (at most half the drain). */
export const SILENT_IN_DRAIN_MS = 1000;

/**
 * The HTTP server's open connections, so that the drain can close those kept alive that stay silent. Answers in
 * the drain carry `Connection: close`, but a client that sends nothing during it keeps its connection until the
 * close, and its next request then meets a reset (after it was sent: a POST's fate unknown).
 * Closed early in the drain, while the replica still listens, its next request opens a new connection instead.
 *
 * Not Node's `closeIdleConnections()` at once: a busy client's connection is idle between an answer and its next
 * request, and closing it then resets that request; one silent for `quietMs` has no request on its way.
 */
export class IdleConnections {
  private readonly open = new Set<Socket>();

  /**
   * `firstByteWithinMs`: a connection that has sent nothing this long after it opened is closed. Node's deadlines
   * (headersTimeout, requestTimeout) start with a request's first byte, so one that never sends any was kept for ever:
   * enough of them hold every file descriptor.
   */
  constructor(
    server: Server,
    private readonly firstByteWithinMs = 0,
  ) {
    this.watch(server);
  }

  /** Counts the connections of another server too: one per address with `HOST=localhost` (`listeningServers`). */
  watch(server: Server): void {
    server.on('connection', (socket: Socket) => {
      this.open.add(socket);
      if (this.firstByteWithinMs > 0) closeIfSilent(socket, this.firstByteWithinMs, () => socket.destroy());
      socket.once('close', () => this.open.delete(socket));
    });
  }

  /** Connections still open (a request in flight, or a client that has not finished sending one). */
  get count(): number {
    return this.open.size;
  }

  /**
   * The requests in flight when the drain begins (answered after it: `Connection: close` is set on the requests that
   * come during it) are answered with `Connection: close` too, unless their answer has begun: that connection then
   * stays silent, and `closeSilent` closes it.
   */
  closeAfterAnswers(): void {
    for (const socket of this.open) {
      const answer = answerOf(socket);
      if (answer && !answer.headersSent) answer.setHeader('connection', 'close');
    }
  }

  /** Waits `quietMs`, then closes the connections open before it that read nothing meanwhile and have no answer pending. */
  async closeSilent(quietMs: number): Promise<number> {
    const before = new Map([...this.open].map((socket) => [socket, socket.bytesRead]));
    await new Promise((resolve) => setTimeout(resolve, quietMs));
    let closed = 0;
    for (const [socket, bytesRead] of before) {
      // A request whose handler is still working is silent too, and must be answered.
      if (socket.destroyed || socket.bytesRead !== bytesRead || answerOf(socket)) continue;
      socket.destroy();
      closed++;
    }
    return closed;
  }
}

/** The answer a connection is busy with, if any: Node's `_httpMessage`, which its own `closeIdleConnections` checks. */
function answerOf(socket: Socket): ServerResponse | undefined {
  return (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage ?? undefined;
}

/**
 * The servers a Fastify instance listens with besides its own (`fastify.server`): with `HOST=localhost` it binds every
 * address `localhost` resolves to (127.0.0.1 and ::1, commonly), the first on its own server and each other one on a
 * server it makes after the first listens and does not expose but through its `serverBindings` symbol (Fastify 4 and
 * 5: `fastify.addresses()` reads it). Their connections, and their `checkExpectation`, are the host's as much as the
 * first server's. Read once the instance listens.
 */
export function otherListeningServers(fastify: FastifyInstance): Server[] {
  const bindings = Object.getOwnPropertySymbols(fastify).find((s) => s.description === 'fastify.serverBindings');
  if (bindings) return (fastify as unknown as Record<symbol, Server[]>)[bindings];
  // A Fastify that keeps them elsewhere: refused only where it matters (else every start would fail after an upgrade).
  if (fastify.addresses().length > 1) throw new Error("this Fastify listens on several addresses but has no 'fastify.serverBindings': their connections cannot be drained (see otherListeningServers)");
  return [];
}

/**
 * Closes `socket` with `close` when it has sent no byte `ms` after it opened: Node's deadlines (HTTP's headersTimeout
 * and requestTimeout, grpc-js' idle limit) start only once a client speaks. Used by HTTP and the gRPC server alike.
 */
export function closeIfSilent(socket: Socket, ms: number, close: () => void): void {
  const silent = setTimeout(() => socket.bytesRead === 0 && close(), ms).unref();
  socket.once('close', () => clearTimeout(silent));
}
