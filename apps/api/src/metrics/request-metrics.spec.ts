import { register } from 'prom-client';
import { countHttpRequests } from './request-metrics';

describe('countHttpRequests', () => {
  afterEach(() => register.clear());

  it('counts per route and status, and puts each duration in the first bucket it fits (cumulative, +Inf = count)', async () => {
    const hooks: Record<string, (...args: unknown[]) => void> = {};
    countHttpRequests({ addHook: (name: string, hook: (...args: unknown[]) => void) => (hooks[name] = hook) } as never);
    const req = (method: string, url?: string) => ({ method, routeOptions: url === undefined ? {} : { url } });
    const answer = (r: object, statusCode: number, ms: number) => hooks.onResponse(r, { statusCode, elapsedTime: ms }, () => undefined);
    answer(req('GET', '/v1/x/:id'), 200, 0.5);
    answer(req('GET', '/v1/x/:id'), 200, 3);
    answer(req('GET', '/v1/x/:id'), 503, 20_000);
    answer(req('BREW'), 404, 1);
    const left = req('GET', '/v1/x/:id');
    hooks.onRequestAbort(left, () => undefined);
    answer(left, 200, 9); // Fastify may still finish an aborted request: counted once, as aborted

    const text = await register.metrics();
    const line = (series: string) => text.split('\n').find((l) => l.startsWith(`${series} `))?.split(' ')[1];
    const route = 'method="GET",route="/v1/x/:id"';
    expect(line(`credential_vault_http_requests_total{${route},status="200"}`)).toBe('2');
    expect(line(`credential_vault_http_requests_total{${route},status="503"}`)).toBe('1');
    expect(line(`credential_vault_http_requests_total{${route},status="aborted"}`)).toBe('1');
    expect(line('credential_vault_http_requests_total{method="other",route="unmatched",status="404"}')).toBe('1');
    const bucket = (le: string) => line(`credential_vault_http_request_duration_seconds_bucket{le="${le}",${route}}`);
    expect(['0.001', '0.0025', '0.005', '10', '+Inf'].map(bucket)).toEqual(['1', '1', '2', '2', '3']);
    expect(Number(line(`credential_vault_http_request_duration_seconds_sum{${route}}`))).toBeCloseTo(20.0035, 6);
    expect(line(`credential_vault_http_request_duration_seconds_count{${route}}`)).toBe('3');
  });
});
