import type { INestApplication } from '@nestjs/common';
import { getDataSourceToken } from '@nestjs/typeorm';
import { KeyVaultProvider } from '@app/key-vault';
import type { DataSource } from 'typeorm';

/** Tables that hold credential state (audit rows are left out: a refused request is audited by design). */
const STATE_TABLES = ['cv_credentials', 'cv_credential_versions', 'cv_envelope_values', 'cv_outbox'];
/** The dispatcher marks outbox rows delivered in the background: only which events exist counts there. */
const COLUMNS: Record<string, string> = { cv_outbox: 'id' };

export interface StateSnapshot {
  /** Row count and every row of each state table. */
  rows: Record<string, string>;
  /** Every vault secret (including data keys; not audit anchors) with its versions and enabled flags. */
  vault: Record<string, string[]>;
}

/**
 * What a host has stored — metadata rows and vault contents — to compare before and after a request
 * that must change nothing. Rows are fingerprinted whole (every column), so an update shows too.
 */
export async function stateSnapshot(app: INestApplication): Promise<StateSnapshot> {
  const ds = app.get<DataSource>(getDataSourceToken());
  const rows: Record<string, string> = {};
  for (const table of STATE_TABLES) {
    const exists = ds.entityMetadatas.some((m) => m.tableName === table);
    if (!exists) continue;
    const all = await ds.query(`SELECT ${COLUMNS[table] ?? '*'} FROM ${table} ORDER BY id`);
    rows[table] = `${all.length}:${JSON.stringify(all)}`;
  }
  const kv = app.get(KeyVaultProvider);
  const vault: Record<string, string[]> = {};
  for await (const secret of kv.listAllSecrets()) {
    // The anchoring job writes these on its own schedule, whatever the requests do.
    if (/-audit-anchor-[0-9a-f]+$/.test(secret.name)) continue;
    const versions: string[] = [];
    for await (const v of kv.listAllSecretVersions(secret.name)) versions.push(`${v.version}:${v.enabled}`);
    vault[secret.name] = versions.sort();
  }
  return { rows, vault };
}
