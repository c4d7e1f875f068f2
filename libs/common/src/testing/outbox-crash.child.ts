/**
 * Child process of outbox-crash.int-spec.ts (run with an @swc/core require hook, never by jest).
 * `CV_TEST_DS` holds the DataSource options as JSON. Modes:
 * - `commit`: commits a change and its outbox event, prints `COMMITTED <eventId>`, then idles (no
 *   dispatcher) until the parent kills it with SIGKILL.
 * - `dispatch`: delivers pending events to the idempotent handler, which prints `EFFECT <eventId>`
 *   after applying its effect and then hangs, so the parent can kill the process before the row is
 *   marked delivered.
 */
import 'reflect-metadata';
import type { DataSourceOptions } from 'typeorm';
import { Outbox } from '../outbox/outbox';
import { OutboxDispatcher } from '../outbox/outbox-dispatcher';
import { OutboxHandlerRegistry } from '../outbox/outbox-handler-registry';
import { resolvePersistenceOptions } from '../persistence/persistence.options';
import { TransactionRunner } from '../persistence/transaction-runner';
import { applyEffectOnce, openTestDataSource, params } from './persistence-test-db';

async function main(): Promise<void> {
  const mode = process.argv[2];
  const ds = await openTestDataSource(JSON.parse(process.env.CV_TEST_DS ?? '{}') as DataSourceOptions);
  const runner = new TransactionRunner(ds);
  const options = resolvePersistenceOptions({ outbox: { pollIntervalMs: 0 } }).outbox;
  const idle = () => setInterval(() => undefined, 60_000);

  if (mode === 'commit') {
    const outbox = new Outbox(runner); // no dispatcher: nothing is delivered by this process
    const id = await runner.run(async () => {
      await runner.manager.query(`INSERT INTO cv_test_items (id, label) VALUES (${params(ds, 2)})`, ['crash-item', 'committed by the child']);
      return outbox.add({ name: 'credential.stored', tenantId: 't-crash', payload: { credentialId: 'crash-item' } });
    });
    process.stdout.write(`COMMITTED ${id}\n`);
    idle();
    return;
  }

  if (mode === 'dispatch') {
    const registry = new OutboxHandlerRegistry();
    registry.register('credential.stored', async (event) => {
      await applyEffectOnce(runner, event.id, `child-${process.pid}`);
      process.stdout.write(`EFFECT ${event.id}\n`);
      await new Promise(() => undefined); // killed here: the row is never marked delivered
    });
    const dispatcher = new OutboxDispatcher({ runner, registry, options });
    dispatcher.start();
    idle();
    return;
  }
  throw new Error(`unknown mode ${mode}`);
}

main().catch((e) => {
  process.stderr.write(`outbox-crash child failed: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
