import { existsSync } from 'node:fs';
import type { Server as NetServer, Socket } from 'node:net';
import { dirname, join } from 'node:path';
import type { Server, ServerInterceptor } from '@grpc/grpc-js';
import { loadSync, type PackageDefinition } from '@grpc/proto-loader';
import { type GrpcOptions, Transport } from '@nestjs/microservices';
import { closeIfSilent } from '../../http/idle-connections';
import { markUndecodableRequests } from './undecodable-request';

/** The proto package and service name of the keys API (proto/credential_vault/keys/v1/keys.proto). */
export const KEYS_GRPC_PACKAGE = 'credential_vault.keys.v1';
export const KEYS_GRPC_SERVICE = 'KeysService';
export const KEYS_PROTO_FILE = 'credential_vault/keys/v1/keys.proto';

/**
 * The repository's `proto/` directory: found upwards from this file, so the same code runs from
 * the sources (tests) and from `dist/` (`npm start`), with the protos beside `dist/` or inside it.
 */
export function protoRoot(from = __dirname): string {
  for (let dir = from, i = 0; i < 8; i++, dir = dirname(dir)) {
    if (existsSync(join(dir, 'proto', KEYS_PROTO_FILE))) return join(dir, 'proto');
  }
  throw new Error(`gRPC is enabled but proto/${KEYS_PROTO_FILE} was not found above ${from}: ship the proto/ directory with the host`);
}

/**
 * Closes every connection to grpc-js' `server` that has sent no byte `ms` after it opened, as HTTP's (IdleConnections):
 * grpc-js' idle limit (`idleMs` of keysGrpcOptions) ends a session once its client spoke, not a connection that never
 * did. Its listening servers are read off its private `http2Servers` (grpc-js 1.x); without them, false.
 */
export function closeSilentConnections(server: Server, ms: number): boolean {
  const servers = (server as unknown as { http2Servers?: Map<NetServer, unknown> }).http2Servers;
  if (!(servers instanceof Map) || servers.size === 0) return false;
  for (const listening of servers.keys()) {
    // Armed before Node's own listener starts the HTTP/2 session, whose 'session' arms grpc-js' idle limit: that is `ms`
    // too in the host, and of two equal timers the first armed fires first. Its close ends the socket (a FIN).
    listening.prependListener('connection', (socket: Socket) => {
      // Reset, not destroy(): destroy() sends a FIN, and a client that reads nothing never sees it (its connection stays
      // open). But a socket the session has begun to end cannot be reset (libuv: EINVAL, and Node then drops its handle
      // unclosed, the descriptor held for ever): that one is destroyed.
      closeIfSilent(socket, ms, () => (socket.writableEnded ? socket.destroy() : socket.resetAndDestroy()));
    });
  }
  return true;
}

/** `host:port` of the keys gRPC server (an IPv6 host in brackets). */
export function keysGrpcAddress(grpc: { host: string; port: number }): string {
  return `${grpc.host.includes(':') ? `[${grpc.host}]` : grpc.host}:${grpc.port}`;
}

/**
 * keys.proto loaded as the server serves it: field names as in the .proto (snake_case), enums and 64-bit numbers as
 * strings, unset scalars as their defaults; a request that does not decode reaches its handler as an UndecodableRequest.
 */
export function keysPackageDefinition(root = protoRoot()): PackageDefinition {
  const definition = loadSync(join(root, KEYS_PROTO_FILE), { keepCase: true, longs: String, enums: String, defaults: true, includeDirs: [root] });
  return markUndecodableRequests(definition);
}

/**
 * The gRPC server of the keys API (`app.connectMicroservice`), on `host:port`, with grpc-js server `interceptors` (first
 * runs first); `onServer` is handed grpc-js' Server once bound, before any service is added to it. `idleMs`: a connection
 * with no call in flight this long is closed (a GOAWAY: a client's next call opens another), else none is.
 */
export function keysGrpcOptions(
  grpc: { host: string; port: number },
  interceptors: ServerInterceptor[] = [],
  onServer?: (server: Server) => void,
  idleMs?: number,
): GrpcOptions {
  return {
    transport: Transport.GRPC,
    options: {
      package: KEYS_GRPC_PACKAGE,
      // Loaded here rather than by Nest (protoPath): Nest takes a package definition as given, deserializers included.
      packageDefinition: keysPackageDefinition(),
      url: keysGrpcAddress(grpc),
      // As the HTTP body limit: no message of this API comes near it (a digest, a ciphertext of ≤ 512 bytes).
      maxReceiveMessageLength: 256 * 1024,
      // Finish calls in flight on shutdown (the HTTP side has SHUTDOWN_TIMEOUT_MS as the backstop).
      gracefulShutdown: true,
      // Passed to grpc-js' Server as they are (Nest hands its channel options to the Server constructor).
      // grpc-js closes no connection by itself, not even one that never sends a byte: enough of them hold every file
      // descriptor (HTTP closes a silent one after HTTP_REQUEST_TIMEOUT_MS, an idle keep-alive one after 72 s).
      channelOptions: { interceptors, ...(idleMs === undefined ? {} : { 'grpc.max_connection_idle_ms': idleMs }) },
      // Nest's one hook with grpc-js' Server: called as it loads the definition, after binding, before adding the service.
      onLoadPackageDefinition: onServer && ((_definition: unknown, server: Server) => onServer(server)),
    },
  };
}
