/**
 * Pool option naming a pool of `postgresDriver` in its log lines (`LockSessions` names its pool `locks`); a symbol, so
 * it is no setting node-postgres reads. A pool without it is `main` (the DataSource's own). A file of its own: the
 * driver and `LockSessions` both need it, and the driver imports `LockSessions`.
 */
export const POSTGRES_POOL_NAME = Symbol('credential-vault.postgres-pool-name');
