import { AuditConfigurationError } from './errors/audit.errors';
import { resolveAuditOptions } from './audit.options';

describe('resolveAuditOptions', () => {
  it('applies the documented defaults', () => {
    expect(resolveAuditOptions(undefined)).toEqual({
      failClosed: true,
      readBuffer: { maxSize: 1000, flushIntervalMs: 1000, batchSize: 200 },
      preparedStatements: true,
      sqliteWriteWorker: true,
      retention: { enabled: true, days: 90, cron: '0 3 * * *', timeZone: 'UTC', statementTimeoutMs: 1_800_000 },
      anchor: { enabled: false, cron: '*/5 * * * *', timeZone: 'UTC' },
      suspicious: { enabled: true, failureThreshold: 5, windowMs: 600_000, distinctReadsThreshold: 100, distinctReadsWindowMs: 600_000 },
    });
    expect(resolveAuditOptions({ readBuffer: { batchSize: 10 } }).readBuffer).toEqual({ maxSize: 1000, flushIntervalMs: 1000, batchSize: 10 });
  });

  it('names every invalid field and what to fix', () => {
    const attempt = () =>
      resolveAuditOptions({ readBuffer: { maxSize: 10, batchSize: 50 }, retention: { cron: 'every day', days: 0 } });
    expect(attempt).toThrow(AuditConfigurationError);
    expect(attempt).toThrow(/readBuffer\.batchSize: must be ≤ readBuffer\.maxSize/);
    expect(attempt).toThrow(/retention\.cron: is not a valid cron expression/);
    expect(attempt).toThrow(/retention\.days/);
  });

  it('checks readBuffer.batchSize against maxSize even when another option has the wrong type (one error, every problem)', () => {
    expect(() => resolveAuditOptions({ preparedStatements: 'no' as never, readBuffer: { maxSize: 10, batchSize: 50 } })).toThrow(
      /preparedStatements: [^;]+; readBuffer\.batchSize: must be ≤ readBuffer\.maxSize/,
    );
  });

  it('rejects unknown option names (typos) and bad time zones', () => {
    expect(() => resolveAuditOptions({ failclosed: false } as never)).toThrow(AuditConfigurationError);
    expect(() => resolveAuditOptions({ retention: { timeZone: 'Mars/Olympus' } })).toThrow(/timeZone/);
    expect(() => resolveAuditOptions({ anchor: { enabled: true, timeZone: 'Mars/Olympus' } })).toThrow(/anchor\.timeZone/);
    expect(() => resolveAuditOptions({ anchor: { cron: 'hourly' } })).toThrow(/anchor\.cron: is not a valid cron expression/);
    expect(() => resolveAuditOptions({ preparedStatements: 'no' as never, retention: { days: 0 } })).toThrow(/preparedStatements[\s\S]*retention\.days/);
    expect(() => resolveAuditOptions({ retention: { statementTimeoutMs: 999 } })).toThrow(/retention\.statementTimeoutMs: must be 0 \(no bound\) or 1000\.\.86400000/);
  });
});
