// A gRPC client of the keys API in a process of its own, as any Node user would write it: grpc-js
// with proto-loader loading the repo's .proto. Usage: node grpc-keys-client.mjs <host:port> <protoRoot>
// Reads one JSON call per stdin line — {id, method (a KeysService method, or any full path), request, metadata, deadlineMs,
// raw (with a full path: the message's bytes as base64, sent as they are)} — and answers one
// JSON line per call: {id, response} or {id, error: {code, details, trailers, status}}, where `status`
// is the google.rpc.Status decoded from `grpc-status-details-bin` (details unpacked), plus the answer's
// `headers` (initial metadata) and `trailers` (text entries), also on success. Bytes fields go both ways
// as base64 strings.
import { Buffer } from 'node:buffer';
import path from 'node:path';
import process from 'node:process';
import readline from 'node:readline';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

const [address, protoRoot] = process.argv.slice(2);
const definition = protoLoader.loadSync(path.join(protoRoot, 'credential_vault/keys/v1/keys.proto'), {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  includeDirs: [protoRoot],
});
const KeysService = grpc.loadPackageDefinition(definition).credential_vault.keys.v1.KeysService;
const client = new KeysService(address, grpc.credentials.createInsecure());

// The standard rich-error messages (google/rpc/status.proto, error_details.proto).
const rpc = protobuf.parse(
  `syntax = "proto3"; package google.rpc;
   message Any { string type_url = 1; bytes value = 2; }
   message Status { int32 code = 1; string message = 2; repeated Any details = 3; }
   message ErrorInfo { string reason = 1; string domain = 2; map<string, string> metadata = 3; }
   message Duration { int64 seconds = 1; int32 nanos = 2; }
   message RetryInfo { Duration retry_delay = 1; }`,
  { keepCase: true },
).root;
const asObject = (type, bytes) => rpc.lookupType(type).toObject(rpc.lookupType(type).decode(bytes), { longs: Number, defaults: true });

const BYTES = new Set(['digest', 'signature', 'plaintext', 'ciphertext']);
const toRequest = (request) =>
  Object.fromEntries(Object.entries(request ?? {}).map(([k, v]) => [k, BYTES.has(k) && typeof v === 'string' ? Buffer.from(v, 'base64') : v]));
const toJson = (value) => JSON.stringify(value, (_k, v) => (v && v.type === 'Buffer' && Array.isArray(v.data) ? Buffer.from(v.data).toString('base64') : v));

function describeError(err) {
  const trailers = {};
  let status;
  for (const [key, values] of Object.entries(err.metadata ? err.metadata.getMap() : {})) {
    if (key === 'grpc-status-details-bin') {
      const s = asObject('google.rpc.Status', values);
      status = {
        code: s.code,
        message: s.message,
        details: s.details.map((d) => ({ type: d.type_url, ...asObject(d.type_url.replace('type.googleapis.com/', ''), d.value) })),
      };
    } else trailers[key] = Buffer.isBuffer(values) ? values.toString('base64') : values;
  }
  return { code: err.code, details: err.details, trailers, status };
}

/** A metadata's text entries (binary ones left out). */
const plain = (m) => Object.fromEntries(Object.entries(m ? m.getMap() : {}).filter(([, v]) => typeof v === 'string'));

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const { id, method, request, metadata, deadlineMs, raw } = JSON.parse(line);
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata ?? {})) md.add(k, v);
  // The answer is written on 'status', which grpc-js emits after the callback: the response (or error), the
  // initial metadata the server sent (none for an error answered alone) and the trailers.
  let outcome;
  let headers = {};
  // A full path (`/pkg.Service/Method`) is called as it is, whatever the server serves: an empty message (or the `raw`
  // bytes, whether or not they are a protobuf message), the answer's byte count.
  const message = raw === undefined ? Buffer.alloc(0) : Buffer.from(raw, 'base64');
  const invoke = method.startsWith('/')
    ? (req, m, options, cb) => client.makeUnaryRequest(method, () => message, (b) => ({ bytes: b.length }), req, m, options, cb)
    : client[method].bind(client);
  const call = invoke(toRequest(request), md, { deadline: Date.now() + (deadlineMs ?? 20_000) }, (err, response) => {
    outcome = err ? { error: describeError(err) } : { response };
  });
  call.on('metadata', (m) => (headers = plain(m)));
  call.on('status', (s) => process.stdout.write(`${toJson({ id, ...outcome, headers, trailers: plain(s.metadata) })}\n`));
}).on('close', () => client.close());
