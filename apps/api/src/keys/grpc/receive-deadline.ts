import { Metadata, ServerInterceptingCall, status as GrpcCode, type ServerInterceptor } from '@grpc/grpc-js';
import { HostErrorCode, hostError } from '../../http/host-errors';
import { encodeRpcStatus, ERROR_CODE_TRAILER, STATUS_DETAILS_TRAILER } from './grpc-status';

/** The text of HTTP's 408 for the same refusal. */
export const REQUEST_TOO_SLOW = 'the request took too long to arrive';

/**
 * A call's request — its metadata, its message and the end of its stream — must arrive within `ms` (HTTP_REQUEST_TIMEOUT_MS,
 * as an HTTP request must): grpc-js has no such bound, so a client announcing a message and sending it a byte at a time held
 * the call (and its connection) open for ever, before any handler or guard ran. Past it the call ends DEADLINE_EXCEEDED with
 * the host's 90008 REQUEST_TIMEOUT, as HTTP answers 408; only the arrival counts: a handler may then take longer.
 */
export function receiveDeadline(ms: number): ServerInterceptor {
  return (_method, call) => {
    let timer: NodeJS.Timeout | undefined;
    const stop = () => {
      clearTimeout(timer);
      timer = undefined;
    };
    const intercepting: ServerInterceptingCall = new ServerInterceptingCall(call, {
      start: (next) => {
        timer = setTimeout(() => {
          timer = undefined;
          intercepting.sendStatus(tooSlow());
        }, ms);
        next({
          onReceiveHalfClose: (nextHalfClose) => {
            stop();
            nextHalfClose();
          },
          onCancel: stop,
        });
      },
      sendStatus: (status, next) => {
        stop();
        next(status);
      },
    });
    return intercepting;
  };
}

function tooSlow(): { code: GrpcCode; details: string; metadata: Metadata } {
  const { code, codeName } = hostError(HostErrorCode.REQUEST_TIMEOUT);
  const metadata = new Metadata();
  metadata.set(ERROR_CODE_TRAILER, String(code));
  metadata.set(
    STATUS_DETAILS_TRAILER,
    encodeRpcStatus({ code: GrpcCode.DEADLINE_EXCEEDED, message: REQUEST_TOO_SLOW, reason: codeName, metadata: { code: String(code) } }),
  );
  return { code: GrpcCode.DEADLINE_EXCEEDED, details: REQUEST_TOO_SLOW, metadata };
}
