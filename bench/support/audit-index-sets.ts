/**
 * Variants of the audit table's query indexes, for benches that price them (audit-row-cost: per row;
 * ab-hosts `--b-audit-indexes`: over HTTP). Not a product option: the migrations keep all four.
 */

/** The migrations' query indexes: what `chain` drops. */
export const QUERY_INDEXES = [
  'IDX_cv_audit_log_tenant_time',
  'IDX_cv_audit_log_tenant_resource_seq',
  'IDX_cv_audit_log_tenant_actor_seq',
  'IDX_cv_audit_log_tenant_action_seq',
];

/** Each query index's columns, as the migrations made them. */
const COLUMNS: Record<string, string> = {
  IDX_cv_audit_log_tenant_time: '"tenant_id", "occurred_at", "id"',
  IDX_cv_audit_log_tenant_resource_seq: '"tenant_id", "resource", "sequence", "occurred_at"',
  IDX_cv_audit_log_tenant_actor_seq: '"tenant_id", "actor_id", "sequence", "occurred_at"',
  IDX_cv_audit_log_tenant_action_seq: '"tenant_id", "action", "sequence", "occurred_at"',
};

/**
 * `all`: the migrations' (on SQLite the four query indexes are partial, caught up off the request's commit);
 * `inline` (SQLite): the four on every row at its commit, as before AuditQueryIndexesOffTheCommit1930000000000
 * (on PostgreSQL the same as `all`); `chain`: the four dropped; `no-<time|resource|actor|action>`: that one
 * dropped; `action-partial`: the action index without the value reads' rows (`WHERE action <> 'read'`).
 */
export const INDEX_SETS = ['all', 'inline', 'chain', 'no-time', 'no-resource', 'no-actor', 'no-action', 'action-partial'] as const;
export type IndexSet = (typeof INDEX_SETS)[number];

export function isIndexSet(s: string): s is IndexSet {
  return (INDEX_SETS as readonly string[]).includes(s);
}

/**
 * The statements that turn the migrations' indexes into `set` (`q` quotes an index name with its schema). On
 * SQLite a dropped or changed index leaves the others partial, still caught up (except `inline`).
 */
export function indexChanges(set: IndexSet, q: (name: string) => string, database: 'sqlite' | 'postgres'): string[] {
  if (set === 'all') return [];
  if (set === 'inline') {
    if (database === 'postgres') return [];
    return QUERY_INDEXES.flatMap((n) => [`DROP INDEX ${q(n)}`, `CREATE INDEX "${n}" ON ${q('cv_audit_log')} (${COLUMNS[n]})`]);
  }
  if (set === 'chain') return QUERY_INDEXES.map((n) => `DROP INDEX ${q(n)}`);
  if (set === 'action-partial') {
    const n = 'IDX_cv_audit_log_tenant_action_seq';
    const pending = database === 'sqlite' ? ` AND "query_pending" IS NULL` : '';
    return [`DROP INDEX ${q(n)}`, `CREATE INDEX "${n}" ON ${q('cv_audit_log')} (${COLUMNS[n]}) WHERE "action" <> 'read'${pending}`];
  }
  const n = QUERY_INDEXES.find((i) => i.includes(`_tenant_${set.slice(3)}`));
  if (!n) throw new Error(`no index for ${set}`);
  return [`DROP INDEX ${q(n)}`];
}
