import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { AuthOptions } from './auth';
import { EmulatorDataDirInUseError } from './data-dir-lock';
import { KeyVaultEmulator } from './emulator';
import { DEFAULT_THROTTLE, KeyVaultEmulatorOptions } from './options';

const HELP = `Local Azure Key Vault (secrets and keys APIs) emulator - FOR DEVELOPMENT AND TESTS ONLY

Usage: npm run emulator -- [options]

  --host <addr>                 interface to listen on (default 127.0.0.1)
  --port <n>                    port (default 8443; 0 = ephemeral)
  --data-dir <dir>              persistence + CA files (default ./data/vault)
  --ca-export <file>            also write the CA certificate (public part only) to this file,
                                e.g. on a volume the vault's clients mount (docker-compose.yml)
  --tenant-id <guid>            tenant named in the 401 challenge
  --retention-days <7..90>      soft-delete retention (default 90)
  --purge-protection            forbid purging deleted secrets
  --operation-delay-ms <n>      how long a delete/recover stays pending, as in Azure (default 1000; 0 = at once)
  --lifetime-actions-check-ms <n>
                                how often the vault applies due rotation-policy actions by itself
                                (auto-rotation, near-expiry events) (default 60000; 0 = only when asked
                                through POST /_emulator/lifetime-actions or /_emulator/time)
  --throttle-limit <n>          transactions per window, Set Secret and Create Key aside; a key's
                                operations weigh by its type, RSA-4096 as 8 (default 4000)
  --throttle-create-secret-limit <n>
                                Set Secret requests per window (default 300, as Azure, or
                                --throttle-limit when lower)
  --throttle-create-key-limit <n>
                                Create Key requests per window, an HSM key counting twice (default 20,
                                as Azure, or --throttle-limit when lower)
  --throttle-window-ms <n>      throttle window (default 10000)
  --no-throttle                 disable throttling
  --auth <any|static|jwt>       accepted bearer tokens (default any)
  --token <t>                   the token for --auth static
  --jwt-issuer <iss>            issuer for --auth jwt
  --jwt-audience <aud>          audience for --auth jwt (default Key Vault's)
  --jwks-uri <url>              JWKS for --auth jwt
  --quiet                       no banner
  -h, --help
`;

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number (got ${v})`);
  return n;
}

/** The emulator's options plus what only the command line does. */
export type EmulatorCliOptions = KeyVaultEmulatorOptions & {
  /** Where to copy the CA certificate once started (the CA key never leaves the data dir). */
  caExportPath?: string;
};

export function parseCli(argv: string[]): EmulatorCliOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      'data-dir': { type: 'string' },
      'ca-export': { type: 'string' },
      'tenant-id': { type: 'string' },
      'retention-days': { type: 'string' },
      'purge-protection': { type: 'boolean' },
      'operation-delay-ms': { type: 'string' },
      'lifetime-actions-check-ms': { type: 'string' },
      'throttle-limit': { type: 'string' },
      'throttle-create-secret-limit': { type: 'string' },
      'throttle-create-key-limit': { type: 'string' },
      'throttle-window-ms': { type: 'string' },
      'no-throttle': { type: 'boolean' },
      auth: { type: 'string' },
      token: { type: 'string' },
      'jwt-issuer': { type: 'string' },
      'jwt-audience': { type: 'string' },
      'jwks-uri': { type: 'string' },
      quiet: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) return 'help';
  let auth: AuthOptions | undefined;
  switch (values.auth ?? 'any') {
    case 'any':
      auth = { mode: 'any' };
      break;
    case 'static':
      auth = { mode: 'static', token: values.token ?? '' };
      break;
    case 'jwt':
      auth = { mode: 'jwt', issuer: values['jwt-issuer'] ?? '', audience: values['jwt-audience'], jwksUri: values['jwks-uri'] };
      break;
    default:
      throw new Error(`--auth must be any, static or jwt (got ${values.auth})`);
  }
  return {
    host: values.host,
    port: num('port', values.port) ?? 8443,
    dataDir: values['data-dir'] ?? './data/vault',
    tenantId: values['tenant-id'],
    softDeleteRetentionDays: num('retention-days', values['retention-days']),
    purgeProtection: values['purge-protection'] ?? false,
    operationDelayMs: num('operation-delay-ms', values['operation-delay-ms']),
    lifetimeActionsCheckMs: num('lifetime-actions-check-ms', values['lifetime-actions-check-ms']),
    throttle: values['no-throttle']
      ? false
      : {
          limit: num('throttle-limit', values['throttle-limit']) ?? DEFAULT_THROTTLE.limit,
          windowMs: num('throttle-window-ms', values['throttle-window-ms']) ?? DEFAULT_THROTTLE.windowMs,
          createSecretLimit: num('throttle-create-secret-limit', values['throttle-create-secret-limit']),
          createKeyLimit: num('throttle-create-key-limit', values['throttle-create-key-limit']),
        },
    auth,
    quiet: values.quiet ?? false,
    ...(values['ca-export'] ? { caExportPath: values['ca-export'] } : {}),
  };
}

/** Writes the CA certificate atomically (a client polling for the file never reads half of it). */
function exportCaCert(path: string, pem: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, pem, { mode: 0o644 });
  renameSync(tmp, path);
}

/**
 * The first SIGINT or SIGTERM. Only the first: a second one while the store flushes meets Node's default
 * action and ends the process at once, as a second Ctrl-C does.
 */
function firstSignal(): { received: Promise<NodeJS.Signals>; cancel: () => void } {
  let cancel = () => {};
  const received = new Promise<NodeJS.Signals>((resolve) => {
    const once = (signal: NodeJS.Signals) => {
      cancel();
      resolve(signal);
    };
    cancel = () => {
      process.off('SIGINT', once);
      process.off('SIGTERM', once);
    };
    process.on('SIGINT', once);
    process.on('SIGTERM', once);
  });
  return { received, cancel };
}

/**
 * Runs the emulator as a foreground process with the given flags (`npm run emulator -- ...`,
 * `cli emulator ...`): prints the banner, the vault URL and the CA path, and resolves once a
 * SIGINT/SIGTERM has stopped it (store flushed). Bad flags print the help and set exit code 2.
 */
export async function runEmulatorCli(argv: string[]): Promise<void> {
  let options: EmulatorCliOptions | 'help';
  try {
    options = parseCli(argv);
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${HELP}`);
    process.exitCode = 2;
    return;
  }
  if (options === 'help') {
    console.log(HELP);
    return;
  }
  const { caExportPath, ...emulatorOptions } = options;
  // Listening before anything is printed (the banner too): a supervisor signals once it has read a line, and a
  // SIGTERM that came first would meet Node's default action (killed at once: store not flushed, no 'stopped').
  const signal = firstSignal();
  let emulator: KeyVaultEmulator;
  try {
    emulator = await KeyVaultEmulator.start(emulatorOptions);
    if (caExportPath) exportCaCert(caExportPath, emulator.caCertPem);
  } catch (err) {
    signal.cancel();
    // Its own flag: leaving it out here is ./data/vault, not the library's temporary dir.
    if (err instanceof EmulatorDataDirInUseError) throw new EmulatorDataDirInUseError(err.dataDir, err.pid, 'pass another --data-dir');
    throw err;
  }
  console.log(`Vault URL: ${emulator.vaultUrl}`);
  console.log(`CA certificate: ${emulator.caCertPath}   (SecretClient option tlsOptions: { ca }, or NODE_EXTRA_CA_CERTS)`);
  if (caExportPath) console.log(`CA certificate exported to: ${caExportPath}`);
  console.log(`Data dir: ${emulator.dataDir}`);
  console.log(`\n${await signal.received} received, stopping (flushing the store)...`);
  await emulator.stop();
  console.log('Key Vault emulator stopped.');
}

if (require.main === module) {
  runEmulatorCli(process.argv.slice(2)).catch((err: unknown) => {
    console.error(`Key Vault emulator failed: ${(err as Error).message}`);
    process.exit(1);
  });
}
