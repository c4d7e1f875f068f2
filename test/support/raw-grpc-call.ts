import { connect, constants } from 'node:http2';

/** How a raw call ended: the gRPC status and every header or trailer of the answer but the pseudo-headers. */
export interface RawGrpcAnswer {
  /** The HTTP/2 `:status` (200 for every gRPC answer; grpc-js answers 415 itself to a request that is not gRPC). */
  httpStatus: number;
  /** NaN when the answer has no `grpc-status`. */
  code: number;
  details: string;
  metadata: Record<string, string>;
}

/**
 * One unary gRPC call written by hand over HTTP/2, for what no gRPC client sends: a message flagged compressed whose
 * bytes are not, a `grpc-encoding` the server does not support, a `content-type` that is not gRPC's, no message at all.
 * `frame.compressed` sets the message's flag byte; `frame` null ends the request without a message.
 */
export async function rawGrpcCall(
  address: string,
  path: string,
  frame: { compressed: boolean; bytes: Buffer } | null,
  headers: Record<string, string> = {},
): Promise<RawGrpcAnswer> {
  const session = connect(`http://${address}`);
  try {
    const stream = session.request({
      [constants.HTTP2_HEADER_METHOD]: 'POST',
      [constants.HTTP2_HEADER_PATH]: path,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...headers,
    });
    if (frame === null) stream.end();
    else {
      const prefix = Buffer.alloc(5);
      prefix.writeUInt8(frame.compressed ? 1 : 0, 0);
      prefix.writeUInt32BE(frame.bytes.length, 1);
      stream.end(Buffer.concat([prefix, frame.bytes]));
    }
    const received: Record<string, string> = {};
    let httpStatus = 0;
    const keep = (h: Record<string, unknown>) => {
      if (h[constants.HTTP2_HEADER_STATUS] !== undefined) httpStatus = Number(h[constants.HTTP2_HEADER_STATUS]);
      for (const [k, v] of Object.entries(h)) if (!k.startsWith(':')) received[k] = String(v);
    };
    stream.on('response', keep);
    stream.on('trailers', keep);
    stream.resume();
    await new Promise<void>((resolve, reject) => {
      stream.once('close', resolve);
      stream.once('error', reject);
    });
    const { 'grpc-status': code, 'grpc-message': details = '', ...metadata } = received;
    return { httpStatus, code: Number(code), details: decodeURIComponent(details), metadata };
  } finally {
    session.close();
  }
}
