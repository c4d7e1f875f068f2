import 'reflect-metadata';
import { closeGracefullyOnSignals, createApp } from './bootstrap';
import { ConfigValidationError } from './config/app.config';
import { loadAppConfigResolvingReferences } from './config/keyvault-references';

async function main(): Promise<void> {
  let config;
  try {
    // `@keyvault:<name>` values are read from the vault once, here, before anything uses them.
    config = await loadAppConfigResolvingReferences(process.env);
  } catch (e) {
    if (e instanceof ConfigValidationError) {
      process.stderr.write(`${e.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw e;
  }
  const app = await createApp(config);
  closeGracefullyOnSignals(app, config);
  process.stdout.write(`Credential Vault listening on ${await app.getUrl()}\n`);
}

main().catch((e) => {
  process.stderr.write(`Failed to start: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
