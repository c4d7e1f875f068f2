import Fastify from 'fastify';
import { RouteTable } from './route-table';

describe('RouteTable', () => {
  const routes = (app: ReturnType<typeof Fastify>) => {
    app.get('/probe', async () => ({ ok: true }));
    app.get('/items/:id', async () => ({}));
    app.delete('/items/:id', async () => ({}));
    app.get('/items/special', async () => ({}));
  };

  it('names the methods of every route that has a path, as Fastify matches it; none for a path no route has', async () => {
    const app = Fastify({ exposeHeadRoutes: false });
    const table = new RouteTable(app, { headToo: ['/probe'] });
    routes(app);
    await app.ready();
    expect(table.allowedMethods('/probe?x=1')).toBe('GET, HEAD');
    expect(table.allowedMethods('/items/abc')).toBe('GET, DELETE');
    // The static route and the parametric one both take the path.
    expect(table.allowedMethods('/items/special')).toBe('GET, DELETE');
    expect(table.allowedMethods('/items')).toBe('');
    expect(table.allowedMethods('/Probe')).toBe('');
    // HEAD only where asked for (the host answers it over HTTP: test/http-surface.e2e-spec.ts).
    expect([app.hasRoute({ method: 'HEAD', url: '/probe' }), app.hasRoute({ method: 'HEAD', url: '/items/:id' })]).toEqual([true, false]);
    await app.close();
  });

  it('fails the start when made after the routes it should add HEAD to were registered', async () => {
    const app = Fastify({ exposeHeadRoutes: false });
    routes(app);
    new RouteTable(app, { headToo: ['/probe'] });
    await expect(app.ready()).rejects.toThrow('RouteTable was created after the route GET /probe was registered');
  });
});
