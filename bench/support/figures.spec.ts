import { credentialsOf, figure, summaryDoc, summaryFigures, withCredentials } from './figures';

describe('withCredentials / credentialsOf (figure names of --credentials N)', () => {
  it('leaves every name as it is for one credential', () => {
    for (const name of ['warm value read req/s vs bare Fastify (sqlite)', '/health/live req/s vs bare Fastify', 'HTTP read path']) {
      expect(withCredentials(name, 1)).toBe(name);
      expect(credentialsOf(name)).toBe(1);
    }
  });

  it('joins the count to the closing parenthesis, or adds one, and reads it back', () => {
    expect(withCredentials('value read (sqlite)', 1000)).toBe('value read (sqlite, 1000 credentials)');
    expect(withCredentials('/health/live req/s vs bare Fastify', 1000)).toBe('/health/live req/s vs bare Fastify (1000 credentials)');
    expect(credentialsOf('value read (sqlite, 1000 credentials)')).toBe(1000);
    expect(credentialsOf('/health/live req/s vs bare Fastify (200 credentials)')).toBe(200);
  });

  it('counts nothing in names that only mention credentials', () => {
    expect(credentialsOf('20,000 credentials at 4,000/10 s: vault writes/s ÷ 400 (sqlite; baseline: naive pool of 64)')).toBe(1);
  });
});

describe('summaryDoc', () => {
  const f = (bench: string, name: string, value: number) => figure(bench, name, value, null, null);
  const doc = summaryDoc(
    '# Benchmarks\n\n## Other\n\ntext\n',
    [f('http-read', 'value read p99 ms (sqlite)', 9), f('http-read', 'audit overhead (postgres)', 16.6), f('scale', 'RSS MB', 128)],
    'note',
  );
  const names = (d: string) => summaryFigures(d).map((x) => `${x.bench}: ${x.figure} = ${x.value}`);

  it('keeps the one-credential rows of a bench when a run over N credentials writes its own', () => {
    const after = summaryDoc(doc, [f('http-read', withCredentials('value read p99 ms (sqlite)', 1000), 30)], 'note 2');
    expect(names(after)).toEqual([
      'http-read: value read p99 ms (sqlite) = 9',
      'http-read: audit overhead (postgres) = 16.6',
      'scale: RSS MB = 128',
      'http-read: value read p99 ms (sqlite, 1000 credentials) = 30',
    ]);
    expect(after).toContain('## Other\n\ntext\n');
  });

  it("replaces every row of the bench and count that ran, and no other's", () => {
    const spread = summaryDoc(doc, [f('http-read', 'value read p99 ms (sqlite, 1000 credentials)', 30)], 'n');
    const again = summaryDoc(spread, [f('http-read', 'value read p99 ms (sqlite)', 8)], 'n');
    expect(names(again)).toEqual(['scale: RSS MB = 128', 'http-read: value read p99 ms (sqlite, 1000 credentials) = 30', 'http-read: value read p99 ms (sqlite) = 8']);
    const spreadAgain = summaryDoc(again, [f('http-read', 'value read p99 ms (sqlite, 1000 credentials)', 25)], 'n');
    expect(names(spreadAgain)).toEqual(['scale: RSS MB = 128', 'http-read: value read p99 ms (sqlite) = 8', 'http-read: value read p99 ms (sqlite, 1000 credentials) = 25']);
  });
});
