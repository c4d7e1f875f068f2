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

/**
 * `all`: the migrations'; `chain`: the four query indexes dropped; `no-<time|resource|actor|action>`: that one
 * dropped; `action-partial`: the action index without the value reads' rows (`WHERE action <> 'read'`).
 */
export const INDEX_SETS = ['all', 'chain', 'no-time', 'no-resource', 'no-actor', 'no-action', 'action-partial'] as const;
export type IndexSet = (typeof INDEX_SETS)[number];

export function isIndexSet(s: string): s is IndexSet {
  return (INDEX_SETS as readonly string[]).includes(s);
}

/** The statements that turn the migrations' indexes into `set` (`q` quotes an index name with its schema). */
export function indexChanges(set: IndexSet, q: (name: string) => string): string[] {
  if (set === 'all') return [];
  if (set === 'chain') return QUERY_INDEXES.map((n) => `DROP INDEX ${q(n)}`);
  if (set === 'action-partial') {
    const n = 'IDX_cv_audit_log_tenant_action_seq';
    return [`DROP INDEX ${q(n)}`, `CREATE INDEX "${n}" ON ${q('cv_audit_log')} ("tenant_id", "action", "sequence", "occurred_at") WHERE "action" <> 'read'`];
  }
  const n = QUERY_INDEXES.find((i) => i.includes(`_tenant_${set.slice(3)}`));
  if (!n) throw new Error(`no index for ${set}`);
  return [`DROP INDEX ${q(n)}`];
}
