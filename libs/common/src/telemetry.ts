import { SpanKind, SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';
import { describeError } from './errors';

/**
 * OpenTelemetry tracing for the libs, through `@opentelemetry/api` only: without an SDK registered by
 * the host every call here is a no-op costing next to nothing. Span attributes never hold a value, a
 * secret name or request input — ids and outcomes only.
 */
export const TRACER_NAME = 'credential-vault';

export interface InSpanOptions {
  kind?: SpanKind;
  attributes?: Attributes;
  /**
   * Tells a failure that is no error of the operation (a caller who left: CANCELLED) by the attributes to
   * record for it; the span then ends UNSET with those, without `error.type`. Undefined: an error.
   */
  notAnError?: (error: unknown) => Attributes | undefined;
}

/**
 * Runs `work` inside a new span (a child of the active one). The span ends with the outcome; a
 * failure records only the error's name and code (`describeError`), never its message.
 */
export async function inSpan<T>(name: string, options: InSpanOptions, work: (span: Span) => Promise<T>): Promise<T> {
  return trace.getTracer(TRACER_NAME).startActiveSpan(name, { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes }, async (span) => {
    try {
      const result = await work(span);
      span.setStatus({ code: SpanStatusCode.OK });
      return result;
    } catch (error) {
      const benign = options.notAnError?.(error);
      if (benign) {
        // Neither OK (it did not succeed) nor ERROR (the service did not fail): status stays UNSET.
        span.setAttributes(benign);
        throw error;
      }
      span.setAttribute('error.type', describeError(error));
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw error;
    } finally {
      span.end();
    }
  });
}

export { SpanKind };
