import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import { closeGracefullyOnSignals, createApp } from './bootstrap';
import { ConfigValidationError } from './config/app.config';
import { loadAppConfigResolvingReferences } from './config/keyvault-references';
import { startFailureFields } from './http/error-log-fields';
import { otherListeningServers } from './http/idle-connections';
import { keysGrpcAddress } from './keys/grpc/grpc-server';
import { lifecycleLog } from './logging/host-logger';
import { createHostLog } from './logging/logging.options';

async function main(): Promise<void> {
  let config;
  try {
    // `@keyvault:<name>` values are read from the vault once, here, before anything uses them.
    config = await loadAppConfigResolvingReferences(process.env);
  } catch (e) {
    // No logger yet (its level is configuration): plain text on stderr, listing every variable to fix.
    if (e instanceof ConfigValidationError) {
      process.stderr.write(`${e.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw e;
  }
  // From here on stdout carries JSON lines only: Nest's start-up, the listening line, a failed start.
  const log = createHostLog(config);
  try {
    const app = await createApp(config, { log });
    closeGracefullyOnSignals(app, config);
    const url = await app.getUrl();
    // HOST=localhost may bind two addresses (127.0.0.1 and ::1): the line names each.
    const others = otherListeningServers(app.getHttpAdapter().getInstance()).map((server) => {
      const { address, family, port } = server.address() as AddressInfo;
      return `${url.slice(0, url.indexOf('://'))}://${family === 'IPv6' ? `[${address}]` : address}:${port}`;
    });
    lifecycleLog(log).info({ url, ...(others.length ? { alsoOn: others } : {}) }, `Credential Vault listening on ${[url, ...others].join(' and ')}`);
    if (config.grpc.enabled) {
      const grpcUrl = keysGrpcAddress(config.grpc);
      lifecycleLog(log).info({ grpcUrl }, `Keys gRPC API listening on ${grpcUrl}`);
    }
  } catch (e) {
    const err = startFailureFields(e);
    lifecycleLog(log).fatal({ err }, 'Failed to start');
    // LOG_LEVEL=silent writes no line, not even this one: plain text on stderr, or the exit 1 would say nothing of its cause.
    if (config.log.level === 'silent') process.stderr.write(`Failed to start: ${String(err.name)}${err.reason ? `: ${String(err.reason)}` : ''}\n`);
    process.exit(1); // pino writes what it has gathered on exit
  }
}

main().catch((e) => {
  process.stderr.write(`Failed to start: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
