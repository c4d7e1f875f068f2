import { randomUUID } from 'node:crypto';
import { IncomingMessage, ServerResponse } from 'node:http';
import { errors, KeyVaultHttpError } from '../errors';

/** Largest accepted request body (a backup of 500 versions of 25 KB values fits). */
export const MAX_BODY_BYTES = 32 * 1024 * 1024;

export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        failed = true;
        reject(new KeyVaultHttpError(413, 'BadParameter', `The request body exceeds ${MAX_BODY_BYTES} bytes.`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    req.on('error', reject);
  });
}

export function parseJsonObject(raw: Buffer): Record<string, unknown> {
  if (raw.length === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch {
    throw errors.badParameter('The request body is not valid JSON.');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw errors.badParameter('The request body must be a JSON object.');
  return parsed as Record<string, unknown>;
}

/** Writes a JSON (or empty) response with Key Vault's usual headers. */
export function send(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  body?: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8');
  const h: Record<string, string | number> = {
    'Cache-Control': 'no-cache',
    Pragma: 'no-cache',
    Expires: '-1',
    'x-ms-request-id': randomUUID(),
    'x-ms-keyvault-region': 'local',
    'x-ms-keyvault-service-version': '1.9.0.0-emulator',
    'X-Content-Type-Options': 'nosniff',
    ...headers,
  };
  const clientRequestId = req.headers['x-ms-client-request-id'];
  if (typeof clientRequestId === 'string') h['x-ms-client-request-id'] = clientRequestId;
  if (payload) {
    h['Content-Type'] = 'application/json; charset=utf-8';
    h['Content-Length'] = payload.length;
  } else {
    h['Content-Length'] = 0;
  }
  res.writeHead(status, h);
  res.end(payload);
}

export function sendError(req: IncomingMessage, res: ServerResponse, err: KeyVaultHttpError, extraHeaders: Record<string, string> = {}): void {
  send(req, res, err.status, err.toBody(), { ...err.headers, ...extraHeaders });
}
