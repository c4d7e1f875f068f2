import { Inject, Injectable, OnApplicationShutdown, Optional } from '@nestjs/common';
import { context, metrics, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader, type MetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, BatchSpanProcessor, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { TRACER_NAME } from '@app/common';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AppConfig } from '../config/app.config';

/** Where the HTTP server span of a request is kept (the request log line reads its trace id from it). */
const REQUEST_SPAN = Symbol('credential-vault:request-span');

/** Ways to replace the OTLP exporters (tests use in-memory ones). */
export interface TelemetryOverrides {
  spanProcessor?: SpanProcessor;
  metricReader?: MetricReader;
}

/**
 * OpenTelemetry for the host: spans for HTTP requests (here), vault calls, database transactions and
 * cron jobs (in the libs, through `@opentelemetry/api`), the vault metrics under OpenTelemetry names,
 * exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set and off otherwise (the libs' calls
 * are then no-ops). Log lines carry `trace_id`/`span_id`. Spans carry route templates, methods,
 * status codes, ids and outcomes — never a query string, a secret name or a value.
 *
 * The SDK is process-global: one host per process registers it; `shutdown` flushes and unregisters.
 */
export class HostTelemetry {
  private constructor(
    private readonly tracerProvider: BasicTracerProvider,
    private readonly meterProvider: MeterProvider,
  ) {}

  /** Registers the SDK when configured (or overridden); `undefined` otherwise. Call before the Nest app is created. */
  static start(config: AppConfig, overrides?: TelemetryOverrides): HostTelemetry | undefined {
    const t = config.telemetry;
    if (!t && !overrides) return undefined;
    const resource = resourceFromAttributes({ 'service.name': t?.serviceName ?? 'credential-vault', 'service.namespace': 'credential-vault' });
    const spanProcessor =
      overrides?.spanProcessor ?? new BatchSpanProcessor(new OTLPTraceExporter({ url: `${t!.endpoint}/v1/traces` }) as SpanExporter);
    const metricReader =
      overrides?.metricReader ??
      new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter({ url: `${t!.endpoint}/v1/metrics` }), exportIntervalMillis: t!.metricIntervalMs });
    const tracerProvider = new BasicTracerProvider({ resource, spanProcessors: [spanProcessor] });
    const meterProvider = new MeterProvider({ resource, readers: [metricReader] });
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }));
    trace.setGlobalTracerProvider(tracerProvider);
    metrics.setGlobalMeterProvider(meterProvider);
    return new HostTelemetry(tracerProvider, meterProvider);
  }

  /** A server span per request, parent taken from `traceparent`; the rest of the request runs inside it. */
  static instrumentFastify(instance: FastifyInstance): void {
    const tracer = trace.getTracer(TRACER_NAME);
    instance.addHook('onRequest', (req, _reply, done) => {
      const parent = propagation.extract(ROOT_CONTEXT, req.headers);
      const span = tracer.startSpan(`HTTP ${req.method}`, { kind: SpanKind.SERVER, attributes: { 'http.request.method': req.method } }, parent);
      (req as FastifyRequest & { [REQUEST_SPAN]?: Span })[REQUEST_SPAN] = span;
      // Everything after this hook (routing, guards, handler) runs inside the span's context.
      context.with(trace.setSpan(parent, span), done);
    });
    instance.addHook('onResponse', (req, reply, done) => {
      const span = (req as FastifyRequest & { [REQUEST_SPAN]?: Span })[REQUEST_SPAN];
      if (span) {
        const route = req.routeOptions?.url;
        if (route) {
          span.updateName(`${req.method} ${route}`);
          span.setAttribute('http.route', route);
        }
        span.setAttribute('http.response.status_code', reply.statusCode);
        if (reply.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
      }
      done();
    });
  }

  async forceFlush(): Promise<void> {
    await Promise.all([this.tracerProvider.forceFlush(), this.meterProvider.forceFlush()]);
  }

  async shutdown(): Promise<void> {
    await Promise.allSettled([this.tracerProvider.shutdown(), this.meterProvider.shutdown()]);
    trace.disable();
    metrics.disable();
    propagation.disable();
    context.disable();
  }
}

/** `trace_id`/`span_id` of the active span, for every log line (empty without tracing). */
export function traceLogFields(): Record<string, string> {
  const span = trace.getActiveSpan();
  if (!span) return {};
  const spanContext = span.spanContext();
  return trace.isSpanContextValid(spanContext) ? { trace_id: spanContext.traceId, span_id: spanContext.spanId } : {};
}

/** The request's own span ids (the request log line is written after the span's context is left). */
export function requestTraceLogFields(req: object): Record<string, string> {
  const span = (req as { [REQUEST_SPAN]?: Span })[REQUEST_SPAN];
  if (!span) return {};
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}

/** Flushes and unregisters the SDK when the host shuts down (after the modules, so their last spans are kept). */
@Injectable()
export class TelemetryLifecycle implements OnApplicationShutdown {
  constructor(@Optional() @Inject(HostTelemetry) private readonly telemetry: HostTelemetry | null) {}

  async onApplicationShutdown(): Promise<void> {
    await this.telemetry?.shutdown();
  }
}
