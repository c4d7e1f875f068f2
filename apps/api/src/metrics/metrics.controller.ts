import { Controller, Get, Header, NotFoundException, Inject } from '@nestjs/common';
import { collectDefaultMetrics, register } from 'prom-client';
import { ApiOkResponse, ApiOperation } from '@nestjs/swagger';
import { SkipThrottle } from '@nestjs/throttler';
import { Public } from '../auth/auth.decorators';
import { APP_CONFIG, AppConfig } from '../config/app.config';

let defaultMetricsStarted = false;

/** Prometheus scrape endpoint. The libs register their metrics on prom-client's default registry. */
@Public()
@SkipThrottle()
@Controller('metrics')
export class MetricsController {
  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    if (config.metrics.enabled && !defaultMetricsStarted) {
      collectDefaultMetrics({ prefix: 'credential_vault_' });
      defaultMetricsStarted = true;
    }
  }

  @Get()
  @Header('Content-Type', register.contentType)
  @ApiOperation({ summary: 'Prometheus metrics (text exposition format); 404 when METRICS_ENABLED=false' })
  @ApiOkResponse({ description: 'the metrics', content: { 'text/plain': { schema: { type: 'string' } } } })
  async scrape(): Promise<string> {
    if (!this.config.metrics.enabled) throw new NotFoundException('Metrics are disabled (METRICS_ENABLED=false)');
    return register.metrics();
  }
}
