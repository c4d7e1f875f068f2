import { Injectable } from '@nestjs/common';
import { TransactionGate } from '@app/common';
import { DataSource, EntityManager } from 'typeorm';

/**
 * Runs this lib's transactions and reads through the process-wide `TransactionGate` of the
 * DataSource (shared with the other libs).
 *
 * TypeORM's SQLite drivers share ONE connection for the whole DataSource, so two concurrent
 * transactions nest into each other, and a plain read issued while a transaction is open sees its
 * uncommitted rows. Going through the gate, our transactions never nest in another one, and our
 * reads wait until no transaction is open — so an uncommitted version pointer (one whose commit may
 * still fail) is never read, hence never served. On PostgreSQL both are pass-throughs.
 */
@Injectable()
export class DbGate {
  private readonly gate: TransactionGate;

  constructor(readonly dataSource: DataSource) {
    this.gate = TransactionGate.for(dataSource);
  }

  transaction<T>(work: (manager: EntityManager) => Promise<T>): Promise<T> {
    return this.gate.transaction(work);
  }

  /** A read outside any transaction. */
  read<T>(work: (manager: EntityManager) => Promise<T>): Promise<T> {
    return this.gate.serialises ? this.gate.exclusive(() => work(this.dataSource.manager)) : work(this.dataSource.manager);
  }
}
