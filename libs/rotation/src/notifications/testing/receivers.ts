import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { SMTPServer } from 'smtp-server';

/** Test-only (not exported by the lib): a real SMTP server on 127.0.0.1 that keeps what it receives. */
export class TestSmtpServer {
  readonly messages: Array<{ from: string; to: string[]; raw: string }> = [];
  private constructor(
    private readonly server: SMTPServer,
    readonly port: number,
  ) {}

  static async start(): Promise<TestSmtpServer> {
    const messages: TestSmtpServer['messages'] = [];
    const greylisted = new Set<string>();
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      // A mailbox under reject.example answers 550, like a bouncing address; one under greylist.example
      // answers 451 (try again later) the first time it is named, like a greylisting server.
      onRcptTo(address, _session, callback) {
        if (address.address.endsWith('@reject.example')) return callback(Object.assign(new Error('mailbox unavailable'), { responseCode: 550 }));
        if (address.address.endsWith('@greylist.example') && !greylisted.has(address.address)) {
          greylisted.add(address.address);
          return callback(Object.assign(new Error('greylisted, try again later'), { responseCode: 451 }));
        }
        callback();
      },
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          messages.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            raw: Buffer.concat(chunks).toString('utf8'),
          });
          callback();
        });
      },
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const port = ((server as unknown as { server: Server }).server.address() as AddressInfo).port;
    const smtp = new TestSmtpServer(server, port);
    (smtp as { messages: TestSmtpServer['messages'] }).messages = messages;
    return smtp;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Header and decoded text body of a raw message (unfolded headers, quoted-printable decoded). */
export function parseMail(raw: string): { headers: Record<string, string>; text: string } {
  const split = raw.indexOf('\r\n\r\n');
  const head = raw.slice(0, split).replace(/\r\n(?=[ \t])/g, '');
  const headers: Record<string, string> = {};
  for (const line of head.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  let text = raw.slice(split + 4);
  if (/quoted-printable/i.test(headers['content-transfer-encoding'] ?? '')) {
    text = Buffer.from(text.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8');
  }
  return { headers, text: text.replace(/\r\n/g, '\n') };
}

export interface ReceivedWebhook {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** Test-only: an HTTP receiver on 127.0.0.1 answering each request with `respond(request, n)` (n: 1-based count on that path). */
export class TestWebhookReceiver {
  readonly requests: ReceivedWebhook[] = [];
  /**
   * The status to answer the n-th request on its path with; `null` never answers (a receiver that hangs);
   * `{ status, headers }` answers with those headers; with `drip: true` it sends the status, then a body
   * byte every 100 ms that never ends.
   */
  respond: (request: ReceivedWebhook, n: number) => number | null | { status: number; headers?: Record<string, string>; drip?: true } = () => 204;
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<TestWebhookReceiver> {
    const holder: { receiver?: TestWebhookReceiver } = {};
    const server = createServer((req, res) => {
      const receiver = holder.receiver;
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const request: ReceivedWebhook = { path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
        receiver!.requests.push(request);
        const n = receiver!.requests.filter((r) => r.path === request.path).length;
        const status = receiver!.respond(request, n);
        if (status === null) return;
        if (typeof status === 'object') {
          res.writeHead(status.status, status.headers);
          if (!status.drip) return void res.end();
          res.flushHeaders();
          const drip = setInterval(() => res.write('.'), 100);
          res.on('close', () => clearInterval(drip));
          return;
        }
        res.statusCode = status;
        res.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    holder.receiver = new TestWebhookReceiver(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return holder.receiver;
  }

  on(path: string): ReceivedWebhook[] {
    return this.requests.filter((r) => r.path === path);
  }

  close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections(); // the requests left hanging too
    return closed;
  }
}

/**
 * Test-only: an SMTP server that answers every command at once, but after the message's final dot
 * only sends `250-` continuation lines, one every `dripMs`, never the last one. Silence never lasts
 * long enough for an inactivity timeout: only a bound on the whole send ends it.
 */
export class DrippingSmtpServer {
  /** Connections the client has not closed yet. */
  readonly open = new Set<Socket>();
  /** Most connections open at once. */
  maxOpen = 0;
  private constructor(
    private readonly server: TcpServer,
    readonly port: number,
  ) {}

  static async start(dripMs = 200): Promise<DrippingSmtpServer> {
    const holder: { smtp?: DrippingSmtpServer } = {};
    const server = createTcpServer((socket) => {
      const smtp = holder.smtp!;
      smtp.open.add(socket);
      smtp.maxOpen = Math.max(smtp.maxOpen, smtp.open.size);
      const timers: NodeJS.Timeout[] = [];
      const gone = () => {
        smtp.open.delete(socket);
        timers.forEach(clearInterval);
      };
      socket.on('close', gone);
      socket.on('end', () => socket.end());
      socket.on('error', gone);
      const say = (line: string) => void (socket.writable && socket.write(`${line}\r\n`));
      say('220 drip.example ESMTP');
      let buffered = '';
      let inData = false;
      socket.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('latin1');
        for (;;) {
          if (inData) {
            const end = buffered.indexOf('\r\n.\r\n');
            if (end < 0) return;
            buffered = buffered.slice(end + 5);
            inData = false;
            timers.push(setInterval(() => say('250-still queueing'), dripMs));
            continue;
          }
          const eol = buffered.indexOf('\r\n');
          if (eol < 0) return;
          const verb = buffered.slice(0, eol).slice(0, 4).toUpperCase();
          buffered = buffered.slice(eol + 2);
          if (verb === 'EHLO') say('250-drip.example\r\n250 8BITMIME');
          else if (verb === 'DATA') {
            inData = true;
            say('354 go ahead');
          } else if (verb === 'QUIT') {
            say('221 bye');
            socket.end();
          } else say('250 ok');
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    holder.smtp = new DrippingSmtpServer(server, (server.address() as AddressInfo).port);
    return holder.smtp;
  }

  close(): Promise<void> {
    for (const socket of this.open) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
