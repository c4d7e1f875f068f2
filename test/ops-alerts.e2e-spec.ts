import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './support/grpc-keys-client';
import { startTestHost, TestHost } from './support/host';

const root = join(__dirname, '..');
const promtool = (...args: string[]) => execFileSync('promtool', args, { cwd: join(root, 'ops'), encoding: 'utf8', stdio: 'pipe' });

/** The operator's side: ops/alerts.yml is valid and does what its tests say, and docs/OPERATIONS.md covers every metric. */
describe('operations: alert rules and the metrics reference', () => {
  let host: TestHost;
  let served: Set<string>;
  let jobs: Set<string>;
  let exposition: string;
  beforeAll(async () => {
    // gRPC on: its request metrics are served only then.
    host = await startTestHost('sqlite', { GRPC_ENABLED: 'true', GRPC_PORT: String(await freePort()) });
    const text = await (await fetch(`${host.baseUrl}/metrics`)).text();
    exposition = text;
    served = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    jobs = new Set([...text.matchAll(/scheduled_job="([^"]+)"/g)].map((m) => m[1]));
  });
  afterAll(() => host?.close());

  it('promtool accepts the rules and their unit tests pass (needs promtool: apt-get install prometheus)', () => {
    expect(promtool('check', 'rules', 'alerts.yml')).toMatch(/SUCCESS: \d+ rules found/);
    expect(promtool('test', 'rules', 'alerts.test.yml')).toMatch(/SUCCESS/);
  });

  // docs/OPERATIONS.md, Metrics: prom-client's three gauges named `_total` are the only series the linter flags.
  it("promtool's metrics lint flags none of the host's own series (Prometheus naming: units, _total on counters only)", () => {
    let problems = '';
    try {
      execFileSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8', stdio: 'pipe' });
    } catch (e) {
      problems = `${(e as { stdout?: string }).stdout ?? ''}${(e as { stderr?: string }).stderr ?? ''}`;
    }
    const flagged = [...new Set(problems.split('\n').filter(Boolean).map((l) => l.split(' ')[0]))].sort();
    expect(flagged).toEqual(['active_handles', 'active_requests', 'active_resources'].map((m) => `credential_vault_nodejs_${m}_total`));
  });

  it('every metric the rules use is one the host serves', () => {
    const rules = readFileSync(join(root, 'ops/alerts.yml'), 'utf8');
    const used = new Set([...rules.matchAll(/\b(credential_vault_[a-z0-9_]+)/g)].map((m) => m[1]));
    expect(used.size).toBeGreaterThan(10);
    expect([...used].filter((name) => !served.has(name))).toEqual([]);
  });

  it('every alert has a runbook section in docs/OPERATIONS.md', () => {
    const rules = readFileSync(join(root, 'ops/alerts.yml'), 'utf8');
    const doc = readFileSync(join(root, 'docs/OPERATIONS.md'), 'utf8');
    const alerts = [...rules.matchAll(/- alert: (\S+)/g)].map((m) => m[1]);
    expect(alerts.filter((a) => !new RegExp(`^#### ${a}$`, 'm').test(doc))).toEqual([]);
  });

  it("docs/OPERATIONS.md documents every Credential Vault metric the host serves (not Node's process metrics)", () => {
    const doc = readFileSync(join(root, 'docs/OPERATIONS.md'), 'utf8');
    const ours = [...served].filter((n) => n.startsWith('credential_vault_') && !/^credential_vault_(process|nodejs)_/.test(n));
    expect(ours.length).toBeGreaterThan(20);
    expect(ours.filter((n) => !doc.includes(`\`${n}\``))).toEqual([]);
  });

  it('the docs name no metric the host does not serve (a histogram by its family name)', () => {
    const docs = ['README.md', 'docs/OPERATIONS.md', 'docs/ARCHITECTURE.md', 'docs/SECURITY.md', 'docs/RELIABILITY.md', ...readdirSync(join(root, 'libs')).map((l) => `libs/${l}/README.md`)];
    const named = docs.flatMap((d) => [...readFileSync(join(root, d), 'utf8').matchAll(/`(credential_vault_[a-z0-9_]*[a-z0-9])[`{]/g)].map((m) => `${d}: ${m[1]}`));
    expect(named.length).toBeGreaterThan(50);
    expect(named.filter((n) => !served.has(n.split(': ')[1]))).toEqual([]);
  });

  it('docs/OPERATIONS.md names every scheduled job the host runs (the `scheduled_job` label)', () => {
    const doc = readFileSync(join(root, 'docs/OPERATIONS.md'), 'utf8');
    expect(jobs.size).toBeGreaterThan(5);
    expect([...jobs].filter((j) => !doc.includes(`\`${j}\``))).toEqual([]);
  });
});
