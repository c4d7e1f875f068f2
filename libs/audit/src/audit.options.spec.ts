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
      /preparedStatements: must be a boolean\n {2}- readBuffer\.batchSize: must be ≤ readBuffer\.maxSize/,
    );
  });

  it('rejects unknown option names (typos) and bad time zones', () => {
    expect(() => resolveAuditOptions({ failclosed: false } as never)).toThrow(AuditConfigurationError);
    // A misspelt key in a nested option is named, not taken for "must be an object".
    expect(() => resolveAuditOptions({ failclosed: false, readBuffer: { maxsize: 5 } } as never)).toThrow(/readBuffer: Unrecognized key: "maxsize"; did you mean "maxSize"[\s\S]*"failclosed"/);
    expect(() => resolveAuditOptions({ retention: { timeZone: 'Mars/Olympus' } })).toThrow(/timeZone/);
    expect(() => resolveAuditOptions({ anchor: { enabled: true, timeZone: 'Mars/Olympus' } })).toThrow(/anchor\.timeZone/);
    expect(() => resolveAuditOptions({ anchor: { cron: 'hourly' } })).toThrow(/anchor\.cron: is not a valid cron expression/);
    expect(() => resolveAuditOptions({ preparedStatements: 'no' as never, retention: { days: 0 } })).toThrow(/preparedStatements[\s\S]*retention\.days/);
    expect(() => resolveAuditOptions({ retention: { statementTimeoutMs: 999 } })).toThrow(/retention\.statementTimeoutMs: must be 0 \(no bound\) or an integer of milliseconds in 1000\.\.86400000/);
  });

  it('says what each option wants, as the other libs\' options errors do (never zod\'s "Invalid input: expected …"), listing every problem', () => {
    const attempt = () =>
      resolveAuditOptions({
        failClosed: 'yes',
        readBuffer: { maxSize: '10', flushIntervalMs: 5, batchSize: 1.5 },
        preparedStatements: 1,
        sqliteWriteWorker: null,
        retention: { enabled: 'on', days: 'ninety', statementTimeoutMs: 'long' },
        anchor: 3,
        suspicious: { enabled: 'x', failureThreshold: 0, windowMs: 10, distinctReadsThreshold: '5', distinctReadsWindowMs: 1e12 },
      } as never);
    expect(attempt).toThrow(AuditConfigurationError);
    expect(attempt).toThrow(
      [
        'Invalid AuditModule options:',
        '  - failClosed: must be a boolean',
        '  - readBuffer.maxSize: must be an integer in 1..1000000',
        '  - readBuffer.flushIntervalMs: must be an integer of milliseconds in 10..3600000',
        '  - readBuffer.batchSize: must be an integer in 1..1000',
        '  - preparedStatements: must be a boolean',
        '  - sqliteWriteWorker: must be a boolean',
        '  - retention.enabled: must be a boolean',
        '  - retention.days: must be an integer in 1..36500',
        '  - retention.statementTimeoutMs: must be 0 (no bound) or an integer of milliseconds in 1000..86400000',
        '  - anchor: must be an object',
        '  - suspicious.enabled: must be a boolean',
        '  - suspicious.failureThreshold: must be an integer in 1..1000000',
        '  - suspicious.windowMs: must be an integer of milliseconds in 1000..604800000',
        '  - suspicious.distinctReadsThreshold: must be an integer in 1..1000000',
        '  - suspicious.distinctReadsWindowMs: must be an integer of milliseconds in 1000..604800000',
      ].join('\n'),
    );
    expect(() => resolveAuditOptions('yes' as never)).toThrow('Invalid AuditModule options:\n  - (options): must be an object');
    expect(() => resolveAuditOptions({ readBuffer: [], retention: null, suspicious: 'on' } as never)).toThrow(
      'Invalid AuditModule options:\n  - readBuffer: must be an object\n  - retention: must be an object\n  - suspicious: must be an object',
    );
    // The shared time zone field too: one problem each, never "expected string, received number" or "Too small".
    expect(() => resolveAuditOptions({ retention: { timeZone: '' }, anchor: { timeZone: 5 } } as never)).toThrow(
      'Invalid AuditModule options:\n  - retention.timeZone: is not an IANA time zone\n  - anchor.timeZone: is not an IANA time zone',
    );
  });
});
