// t/lib/difftest.mjs: a differential test of sidemeter's HTTP counts against Node.js's own
// HTTP server (llhttp), a strict parser nobody here wrote.
//
//   node difftest.mjs UP_PORT SM_PORT SEED SESSIONS [CONCURRENCY]
//   node difftest.mjs UP_PORT SM_PORT raw METRICS_PORT < CASES.json
//
// It runs the application (node's http server, on a port of its own) behind a recorder on
// UP_PORT that copies every byte both ways, so that what went between sidemeter and the
// application is known exactly.  Then it plays SESSIONS seeded random sessions of valid,
// tricky HTTP/1.x through sidemeter on SM_PORT (keep-alive, pipelining written in random
// cuts, chunked bodies with extensions and trailers, 100-continue, HEAD, 1xx/204/304,
// answers that close, HTTP/1.0 keep-alive, odd header case and whitespace, extension
// methods) and prints one JSON object: what node answered by "METHOD code" (its own log,
// from each response's 'finish'), what the clients parsed, the sessions whose bytes differ
// between the client and the application in either direction, and totals.  The caller
// compares node's and the clients' counts with sidemeter's /metrics.
//
// In raw mode it reads a JSON list of {name, bytes[, end]} (bytes: a latin1 string; end:
// "fin" to half-close after them, "close" to close and read nothing more) and sends each on a connection of its own, one after the other; for each it prints one JSON line: whether
// the bytes arrived unchanged both ways, node's status line(s), and what moved on
// sidemeter's /metrics meanwhile (requests by method and code, incomplete and opaque by
// reason).
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';

const rawMode = process.argv[4] === 'raw';
const [upPort, smPort, seed, sessions, conc = '8'] = process.argv.slice(2).map(Number);
if (!upPort || !smPort || (!rawMode && (!Number.isFinite(seed) || !sessions))) {
	console.error('usage: difftest.mjs UP_PORT SM_PORT SEED SESSIONS [CONCURRENCY]\n' +
		'       difftest.mjs UP_PORT SM_PORT raw METRICS_PORT < CASES.json');
	process.exit(2);
}

// ---- a seeded generator (mulberry32) -------------------------------------------------

function rng(s) {
	let a = s >>> 0;
	const next = () => {
		a = (a + 0x6d2b79f5) >>> 0;
		let t = a;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
	return {
		next,
		int: (n) => Math.floor(next() * n),
		pick: (xs) => xs[Math.floor(next() * xs.length)],
		chance: (p) => next() < p,
	};
}

// sidemeter's method label for node's method name
const LABELLED = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);
const label = (m) => (LABELLED.has(m) ? m : 'OTHER');
const bump = (o, k) => { o[k] = (o[k] || 0) + 1; };

// ---- the application ------------------------------------------------------------------

const answered = {};		// what node answered, by "METHOD code"
let nodeErrors = 0;		// requests node itself refused (clientError)

function body(n, c) { return Buffer.alloc(n, c); }

const app = http.createServer((req, res) => {
	const parts = req.url.split('/');	// "", kind, arg
	const kind = parts[1] || '';
	const arg = parts[2] || '';
	res.on('finish', () => bump(answered, `${label(req.method)} ${res.statusCode}`));
	req.resume();
	req.on('end', () => {
		switch (kind) {
		case 'code': {
			const code = Number(arg) || 200;
			res.statusCode = code;
			if (code === 204 || code === 304) { res.end(); return; }
			const b = body(code % 50, 'c');
			res.setHeader('Content-Length', b.length);
			res.end(b);
			return;
		}
		case 'chunked': {
			// HTTP/1.0: close-delimited; HEAD: no body to end with trailers
			const trailers = req.httpVersion === '1.1' && req.method !== 'HEAD';
			if (trailers) res.setHeader('Trailer', 'X-Sum');
			res.write(body(Number(arg) || 10, 'k'));
			res.write(body(7, 'j'));
			if (trailers) res.addTrailers({ 'X-Sum': 'ok' });
			res.end();
			return;
		}
		case 'close':
			res.setHeader('Connection', 'close');
			res.setHeader('Content-Length', 5);
			res.end('close');
			return;
		case 'eof':	// a body ended by the close: no length, no chunking
			res.useChunkedEncodingByDefault = false;
			res.shouldKeepAlive = false;
			res.end(body(Number(arg) || 20, 'e'));
			return;
		case 'hints':
			res.writeEarlyHints({ link: '</s.css>; rel=preload' });
			res.setHeader('Content-Length', 2);
			res.end('hi');
			return;
		case 'processing':
			res.writeProcessing();
			res.setHeader('Content-Length', 3);
			res.end('pro');
			return;
		case 'big': {
			const b = body(Number(arg) || 100000, 'b');
			res.setHeader('Content-Length', b.length);
			res.end(b);
			return;
		}
		default: {
			const b = body(Number(arg) || 1, 'o');
			res.setHeader('Content-Length', b.length);
			res.end(b);
		}
		}
	});
});
app.on('clientError', (err, sock) => {
	nodeErrors++;
	if (process.env.DIFF_DEBUG) console.error(err.code, err.reason, JSON.stringify(String(err.rawPacket).slice(0, 300)));
	if (sock.writable) sock.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
	bump(answered, 'parse-error 400');
});

// ---- the recorder between sidemeter and the application ------------------------------

const recorded = new Map();	// session id -> { c2u: [Buffer], u2c: [Buffer] }
const recorderTaps = [];	// raw mode: told of every new recorded connection
let recorderConns = 0;

function recorder(appPort) {
	return net.createServer({ allowHalfOpen: true }, (down) => {
		recorderConns++;
		const rec = { c2u: [], u2c: [], id: null };
		for (const tap of recorderTaps) tap(rec);
		const up = net.connect({ port: appPort, host: '127.0.0.1', allowHalfOpen: true });
		down.on('data', (d) => {
			rec.c2u.push(d);
			if (rec.id === null) {
				const m = /x-session:[ \t]*(\S+)[ \t]*\r\n/i.exec(Buffer.concat(rec.c2u).toString('latin1'));
				if (m) { rec.id = m[1]; recorded.set(rec.id, rec); }
			}
			up.write(d);
		});
		up.on('data', (d) => { rec.u2c.push(d); down.write(d); });
		down.on('end', () => up.end());
		up.on('end', () => down.end());
		down.on('error', () => up.destroy());
		up.on('error', () => down.destroy());
		down.on('close', () => up.destroy());
		up.on('close', () => down.destroy());
	});
}

// ---- sessions -------------------------------------------------------------------------

const METHODS = ['GET', 'GET', 'GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'HEAD',
	'PROPFIND', 'PURGE', 'MKCOL'];

function headerName(r, name) {
	switch (r.int(3)) {
	case 0: return name;
	case 1: return name.toLowerCase();
	default: return [...name].map((c) => (r.chance(0.5) ? c.toUpperCase() : c.toLowerCase())).join('');
	}
}

function ows(r) { return r.pick(['', ' ', '  ', '\t', ' \t ']); }
// llhttp refuses a tab around a Content-Length value (RFC 9110 allows it): spaces only there
function sp(r) { return r.pick(['', ' ', '  ']); }

// One request: its bytes and what the client must know to parse the answer.
function makeRequest(r, sid, first, http10) {
	const method = r.pick(METHODS);
	let path;
	switch (r.int(16)) {
	case 0: path = `/code/${r.pick([200, 201, 202, 204, 206, 301, 302, 304, 400, 401, 403, 404, 410, 418, 429, 500, 502, 503])}`; break;
	case 1: case 2: path = `/chunked/${1 + r.int(3000)}`; break;
	case 3: path = '/close'; break;
	case 4: path = `/eof/${1 + r.int(500)}`; break;
	case 5: path = '/hints'; break;
	case 6: path = '/processing'; break;
	case 7: path = `/big/${20000 + r.int(200000)}`; break;
	default: path = `/ok/${1 + r.int(2000)}`;
	}
	if (r.chance(0.2)) path += `?q=${r.int(1000)}&t=x`;
	const h = [];
	h.push(`${headerName(r, 'Host')}:${ows(r)}example.test${ows(r)}`);
	if (first) h.push(`X-Session: ${sid}`);
	if (http10) h.push(`${headerName(r, 'Connection')}: ${r.pick(['keep-alive', 'Keep-Alive', 'keep-alive, x-other'])}`);
	if (r.chance(0.3)) h.push(`${headerName(r, 'X-Odd-Header')}:${ows(r)}v${r.int(100)}${ows(r)}`);
	if (r.chance(0.2)) h.push(`${headerName(r, 'Accept')}: */*`);
	let bodyBytes = '';
	const withBody = method !== 'GET' && method !== 'HEAD' && r.chance(0.7);
	if (withBody) {
		const n = r.int(3000);
		const data = 'd'.repeat(n);
		if (!http10 && r.chance(0.5)) {
			h.push(`${headerName(r, 'Transfer-Encoding')}: chunked`);
			let at = 0;
			while (at < n) {
				const k = Math.min(n - at, 1 + r.int(700));
				const ext = r.chance(0.3) ? `;ext=${r.int(9)}` : r.chance(0.1) ? ';q="a b"' : '';
				bodyBytes += `${k.toString(r.chance(0.5) ? 16 : 16).toUpperCase()}${ext}\r\n${data.slice(at, at + k)}\r\n`;
				at += k;
			}
			bodyBytes += '0\r\n';
			if (r.chance(0.4)) bodyBytes += `${headerName(r, 'X-Trailer')}: t${r.int(9)}\r\n`;
			bodyBytes += '\r\n';
		} else {
			h.push(`${headerName(r, 'Content-Length')}:${sp(r)}${n}${sp(r)}`);
			bodyBytes = data;
		}
		if (!http10 && r.chance(0.25)) h.push(`${headerName(r, 'Expect')}: 100-continue`);
	}
	const version = http10 ? 'HTTP/1.0' : 'HTTP/1.1';
	const text = `${method} ${path} ${version}\r\n${h.join('\r\n')}\r\n\r\n${bodyBytes}`;
	// Does node's answer end the connection?  /close and /eof always; chunked to HTTP/1.0
	// can only be close-delimited.
	const ends = path.startsWith('/close') || path.startsWith('/eof') ||
		(http10 && path.startsWith('/chunked'));
	return { method, text, ends };
}

// Parse answers from buf for the requests, in order; returns the "METHOD code" of each
// complete final answer, and whether the answers end the connection.
function parseAnswers(buf, reqs, closed) {
	const got = [];
	let at = 0;
	const s = buf.toString('latin1');
	for (const q of reqs) {
		for (;;) {	// interim answers, then the final one
			const headEnd = s.indexOf('\r\n\r\n', at);
			if (headEnd < 0) return got;
			const head = s.slice(at, headEnd).split('\r\n');
			const code = Number(head[0].split(' ')[1]);
			const fields = {};
			for (const l of head.slice(1)) {
				const c = l.indexOf(':');
				fields[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
			}
			at = headEnd + 4;
			if (code >= 100 && code < 200) continue;
			if (q.method === 'HEAD' || code === 204 || code === 304) {
				got.push(`${label(q.method)} ${code}`);
				break;
			}
			if (/chunked/i.test(fields['transfer-encoding'] || '')) {
				for (;;) {
					const le = s.indexOf('\r\n', at);
					if (le < 0) return got;
					const size = parseInt(s.slice(at, le), 16);
					at = le + 2;
					if (size === 0) {
						const te = s.indexOf('\r\n\r\n', at - 2);
						if (te < 0) return got;
						at = te + 4;
						break;
					}
					if (at + size + 2 > s.length) return got;
					at += size + 2;
				}
			} else if (fields['content-length'] !== undefined) {
				const n = Number(fields['content-length']);
				if (at + n > s.length) return got;
				at += n;
			} else {
				if (!closed) return got;
				at = s.length;
			}
			got.push(`${label(q.method)} ${code}`);
			break;
		}
	}
	return got;
}

// Play one session: groups of requests, each group sequential or pipelined, written in
// random cuts; read everything until the connection ends.
function session(r, sid) {
	return new Promise((resolve) => {
		const http10 = r.chance(0.1);
		const n = 1 + r.int(r.chance(0.1) ? 24 : 6);
		const reqs = [];
		for (let i = 0; i < n; i++) {
			reqs.push(makeRequest(r, sid, i === 0, http10));
			if (reqs[i].ends) break;	// nothing after it would be answered: stop here
		}
		// sometimes pipeline a request behind one that ends the connection, as the issue's
		// reproducer does: it must stay unanswered, and nothing may follow node's last byte
		if (r.chance(0.3) && reqs[reqs.length - 1].ends) reqs.push(makeRequest(r, sid, false, http10));
		const pipelined = r.chance(0.5);
		const closeEarly = !pipelined && r.chance(0.1);	// the client leaves mid-session
		const sent = [];
		const recv = [];
		let closed = false, settled = false, sentReqs = 0;
		const sock = net.connect({ port: smPort, host: '127.0.0.1', allowHalfOpen: true });
		sock.setNoDelay(true);
		const finish = () => {
			if (settled) return;
			settled = true;
			clearTimeout(timer);
			sock.destroy();
			const buf = Buffer.concat(recv);
			resolve({ sid, reqs: reqs.slice(0, sentReqs), sent: Buffer.concat(sent), recv: buf,
				parsed: parseAnswers(buf, reqs.slice(0, sentReqs), closed),
				endsByApp: reqs.slice(0, sentReqs).some((q) => q.ends) });
		};
		const timer = setTimeout(finish, 15000);
		const write = (text) => new Promise((done) => {
			// random cuts, a few milliseconds apart now and then
			const b = Buffer.from(text, 'latin1');
			const cuts = [];
			let at = 0;
			while (at < b.length) {
				const k = r.chance(0.5) ? b.length - at : 1 + r.int(Math.max(1, b.length - at));
				cuts.push(b.subarray(at, at + k));
				at += k;
			}
			const delays = cuts.map(() => (r.chance(0.15) ? 1 + r.int(3) : 0));
			const next = (i) => {
				if (i === cuts.length || closed) return done();
				sent.push(cuts[i]);
				sock.write(cuts[i]);
				if (delays[i]) setTimeout(() => next(i + 1), delays[i]); else next(i + 1);
			};
			next(0);
		});
		let waiter = null;
		sock.on('data', (d) => { recv.push(d); if (waiter) waiter(); });
		sock.on('end', () => { closed = true; if (waiter) waiter(); finish(); });
		sock.on('error', () => { closed = true; finish(); });
		const answersFor = (k) => new Promise((done) => {
			const check = () => {
				if (closed || parseAnswers(Buffer.concat(recv), reqs.slice(0, k), false).length >= k) {
					waiter = null;
					done();
				}
			};
			waiter = check;
			check();
		});
		sock.on('connect', async () => {
			if (pipelined) {
				sentReqs = reqs.length;
				await write(reqs.map((q) => q.text).join(''));
			} else {
				for (let i = 0; i < reqs.length && !closed; i++) {
					sentReqs = i + 1;
					await write(reqs[i].text);
					await answersFor(i + 1);
					if (closeEarly && i + 1 < reqs.length && r.chance(0.4)) break;
				}
			}
			if (closeEarly || r.chance(0.5)) {
				// wait for every answer, then close (half-close first, now and then)
				await answersFor(sentReqs);
				if (r.chance(0.3)) sock.end(); else finish();
			} else {
				await answersFor(sentReqs);
				finish();
			}
		});
	});
}

// ---- the run --------------------------------------------------------------------------

// ---- raw mode ---------------------------------------------------------------------------

// sidemeter's families that say what happened to a request, as "family label" -> value
async function outcomes(metricsPort) {
	const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
	const o = {};
	for (const line of text.split('\n')) {
		let m = /^sidemeter_http_requests_total\{method="([^"]*)",code="([^"]*)",route="[^"]*"\} (\d+)$/.exec(line);
		if (m) { o[`${m[1]} ${m[2]}`] = (o[`${m[1]} ${m[2]}`] || 0) + Number(m[3]); continue; }
		m = /^sidemeter_(http_requests_incomplete|opaque_connections)_total\{reason="([^"]*)"\} (\d+)$/.exec(line);
		if (m) o[`${m[1] === 'opaque_connections' ? 'opaque' : 'incomplete'}:${m[2]}`] = Number(m[3]);
	}
	return o;
}

function rawCase(bytes, end) {
	return new Promise((resolve) => {
		const sent = Buffer.from(bytes, 'latin1');
		const recv = [];
		const sock = net.connect({ port: smPort, host: '127.0.0.1', allowHalfOpen: true });
		let idle;
		const done = () => { clearTimeout(idle); sock.destroy(); resolve({ sent, recv: Buffer.concat(recv) }); };
		const quiet = () => { clearTimeout(idle); idle = setTimeout(done, 400); };
		sock.on('connect', () => {
			sock.write(sent);
			if (end === 'fin') sock.end();
			if (end === 'close') sock.end(done);	// gone once its FIN is out: reads nothing more
			quiet();
		});
		sock.on('data', (d) => { recv.push(d); quiet(); });
		sock.on('end', done);
		sock.on('error', done);
	});
}

async function runRaw(metricsPort) {
	const cases = JSON.parse(fs.readFileSync(0, 'utf8'));
	for (const c of cases) {
		const before = await outcomes(metricsPort);
		const seen = [];
		const tap = (rec) => seen.push(rec);
		recorderTaps.push(tap);
		const got = await rawCase(c.bytes, c.end);
		await new Promise((done) => setTimeout(done, 200));	// the master's next drain
		recorderTaps.splice(recorderTaps.indexOf(tap), 1);
		const after = await outcomes(metricsPort);
		const moved = {};
		for (const k of Object.keys(after))
			if (after[k] !== (before[k] || 0)) moved[k] = after[k] - (before[k] || 0);
		const c2u = Buffer.concat(seen.flatMap((r) => r.c2u)), u2c = Buffer.concat(seen.flatMap((r) => r.u2c));
		// the bodies here are runs of one letter: a status line cannot hide in them
		const status = [...got.recv.toString('latin1').matchAll(/HTTP\/1\.\d \d{3} [^\r]*/g)].map((m) => m[0]);
		console.log(JSON.stringify({ name: c.name, bytes_to_app: c2u.equals(got.sent),
			// a client that left gets what came before it left, nothing else
			bytes_to_client: c.end === 'close' ? u2c.subarray(0, got.recv.length).equals(got.recv) :
				u2c.equals(got.recv),
			node: status, sidemeter: moved }));
	}
	process.exit(0);
}

app.listen(0, '127.0.0.1', () => {
	const rec = recorder(app.address().port);
	if (rawMode) {
		rec.listen(upPort, '127.0.0.1', () => runRaw(Number(process.argv[5])));
		return;
	}
	rec.listen(upPort, '127.0.0.1', async () => {
		const results = [];
		let next = 0;
		const lane = async () => {
			while (next < sessions) {
				const i = next++;
				results[i] = await session(rng(seed * 100003 + i), `${seed}-${i}`);
			}
		};
		await Promise.all(Array.from({ length: conc }, lane));
		// let node's last 'finish' events and the recorder's copies settle
		await new Promise((done) => setTimeout(done, 300));
		const parsed = {};
		const badBytes = [];
		let requests = 0;
		for (const s of results) {
			requests += s.reqs.length;
			for (const k of s.parsed) bump(parsed, k);
			const rc = recorded.get(s.sid);
			if (!rc) { badBytes.push(`${s.sid}: never reached the application`); continue; }
			const c2u = Buffer.concat(rc.c2u), u2c = Buffer.concat(rc.u2c);
			if (!u2c.equals(s.recv))
				badBytes.push(`${s.sid}: the client got ${s.recv.length} bytes, the application sent ${u2c.length}`);
			// What the client sent after the application closed cannot reach it; all
			// that did reach it must be exactly what the client sent.
			const prefixOk = s.endsByApp ? s.sent.subarray(0, c2u.length).equals(c2u) : s.sent.equals(c2u);
			if (!prefixOk)
				badBytes.push(`${s.sid}: the client sent ${s.sent.length} bytes, the application got ${c2u.length}`);
		}
		console.log(JSON.stringify({ seed, sessions, requests, recorderConns, nodeErrors,
			answered, parsed, badBytes }));
		process.exit(0);
	});
});
