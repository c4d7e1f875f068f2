import { Logger } from '@nestjs/common';
import type { ScheduledJobs } from '@app/common';
import { resolveOAuthRefreshOptions } from './oauth-refresh.options';
import { OAuthRefreshScheduler } from './oauth-refresh.scheduler';
import type { OAuthRefreshService } from './oauth-refresh.service';

describe('OAuthRefreshScheduler start log', () => {
  const started = (proactive: { timeZone?: string }) => {
    const log = jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
    const jobs = { schedule: jest.fn(), unschedule: jest.fn() } as unknown as ScheduledJobs;
    new OAuthRefreshScheduler(jobs, {} as OAuthRefreshService, resolveOAuthRefreshOptions({ proactive })).onApplicationBootstrap();
    const lines = log.mock.calls.map((c) => String(c[0]));
    log.mockRestore();
    return lines;
  };

  it('names the time zone the cron runs in, UTC when none is set, as the other jobs do', () => {
    expect(started({})).toEqual(['oauth-proactive-refresh scheduled (0 * * * * * UTC)']);
    expect(started({ timeZone: 'Europe/Paris' })).toEqual(['oauth-proactive-refresh scheduled (0 * * * * * Europe/Paris)']);
  });
});
