import type { DataSource } from 'typeorm';

/**
 * Ends the one PostgreSQL session that holds the advisory lock `advisoryId` (`PostgresAdvisoryLock.advisoryId(key)`,
 * namespaced by the test's schema), as a terminated backend or a lost connection would, and waits until the lock is
 * free. Runs on `ds` (typically the other replica's DataSource); no other session of the shared server is touched.
 */
export async function endLockSession(ds: DataSource, advisoryId: string): Promise<void> {
  // pg_locks splits the 64-bit key in two oids.
  const id = BigInt.asUintN(64, BigInt(advisoryId));
  const where = `locktype = 'advisory' AND granted AND objsubid = 1 AND classid::bigint = $1::bigint AND objid::bigint = $2::bigint`;
  const params = [(id >> 32n).toString(), (id & 0xffffffffn).toString()];
  const holders: Array<{ pid: number }> = await ds.query(`SELECT pid FROM pg_locks WHERE ${where}`, params);
  if (holders.length !== 1) throw new Error(`expected one session holding advisory lock ${advisoryId}, found ${holders.length}`);
  await ds.query('SELECT pg_terminate_backend($1)', [holders[0].pid]);
  for (let i = 0; i < 250; i++) {
    const [{ n }]: Array<{ n: string }> = await ds.query(`SELECT count(*) AS n FROM pg_locks WHERE ${where}`, params);
    if (Number(n) === 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`advisory lock ${advisoryId} is still held after its session was terminated`);
}
