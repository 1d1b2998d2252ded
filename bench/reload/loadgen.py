#!/usr/bin/env python3
"""Steady HTTP/1.1 load with every failure classified; runs until SIGINT/SIGTERM.

  loadgen.py --port P --host H [--ka-rate 1000 --ka-conns 4] [--fresh-rate 500 --fresh-conns 4]
             --out RESULT.json

Keep-alive workers each hold one connection and reuse it; fresh workers open a new connection
per request (`Connection: close`). Requests are paced (open loop per worker, no bursts to
catch up more than 1 s). Every request ends in exactly one outcome:

  ok               200 with a complete body
  status_NNN       a complete response with another status
  refused          connect() refused (nobody listening)
  connect_error    connect() failed otherwise / timed out
  ka_race          a reused keep-alive connection was closed or reset by the server without
                   a single response byte: the server closed an idle keep-alive connection as
                   the client reused it (a client may retry these; counted as lost here)
  reset_in_flight  reset/EOF before any response byte on a fresh connection
  incomplete       reset/EOF after some but not all of the response
  timeout          no complete response within --timeout

`ka_closed_seen` counts reused connections found already closed by the server (EOF received)
before the next request was sent: not a loss (a careful client notices and reconnects), but
the same server behaviour that produces ka_race when the timing is unlucky.
Each failure is also recorded with its time.monotonic() so the driver can attribute it.
"""
import argparse
import asyncio
import json
import signal
import time

CATEGORIES = ["ok", "refused", "connect_error", "ka_race", "reset_in_flight", "incomplete", "timeout"]


class Incomplete(Exception):
    def __init__(self, received):
        super().__init__(received)
        self.received = received


def parse_head(buf):
    """(status, headers dict, header length) or None if the head is not complete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = buf[:end].split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, end + 4


def body_complete(headers, body, eof):
    """Length of the complete body within `body`, or None if more is needed."""
    if b"content-length" in headers:
        n = int(headers[b"content-length"])
        return n if len(body) >= n else None
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        pos = 0
        while True:
            nl = body.find(b"\r\n", pos)
            if nl < 0:
                return None
            size = int(body[pos:nl].split(b";")[0], 16)
            pos = nl + 2 + size + 2
            if len(body) < pos:
                return None
            if size == 0:
                return pos
    return len(body) if eof else None


async def read_response(reader):
    """Reads one response: (status, body, server_closes). Raises Incomplete(bytes received)."""
    buf = b""
    head = None
    while True:
        try:
            chunk = await reader.read(65536)
        except (ConnectionResetError, BrokenPipeError, OSError):
            raise Incomplete(len(buf))
        eof = chunk == b""
        buf += chunk
        if head is None:
            head = parse_head(buf)
        if head is not None:
            status, headers, hlen = head
            n = body_complete(headers, buf[hlen:], eof)
            if n is not None:
                closes = headers.get(b"connection", b"").lower() == b"close"
                return status, buf[hlen:hlen + n], closes
        if eof:
            raise Incomplete(len(buf))


class Load:
    def __init__(self, a):
        self.a = a
        self.counts = {c: 0 for c in CATEGORIES}
        self.by_mode = {"keepalive": {c: 0 for c in CATEGORIES}, "fresh": {c: 0 for c in CATEGORIES}}
        self.ka_closed_seen = 0
        self.server_close_announced = 0
        self.backends = {}
        self.events = []  # (monotonic time, outcome, mode)
        self.latencies = []
        self.stop = asyncio.Event()
        self.req_ka = f"GET {a.path} HTTP/1.1\r\nHost: {a.host}\r\nUser-Agent: reload-bench\r\n\r\n".encode()
        self.req_fresh = (f"GET {a.path} HTTP/1.1\r\nHost: {a.host}\r\nUser-Agent: reload-bench\r\n"
                          "Connection: close\r\n\r\n").encode()

    def record(self, outcome, mode, started, body=None):
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        self.by_mode[mode][outcome] = self.by_mode[mode].get(outcome, 0) + 1
        if outcome == "ok":
            self.latencies.append(time.monotonic() - started)
            if body is not None and self.a.backend_key:
                key = self.a.backend_key.encode()
                i = body.find(key)
                name = body[i + len(key):].split(b'"', 1)[0].decode() if i >= 0 else "?"
                self.backends[name] = self.backends.get(name, 0) + 1
        else:
            self.events.append((time.monotonic(), outcome, mode))

    async def pace(self, state, period):
        now = time.monotonic()
        state[0] += period
        if state[0] < now - 1.0:
            state[0] = now
        delay = state[0] - now
        if delay > 0:
            try:
                await asyncio.wait_for(self.stop.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def connect(self):
        return await asyncio.wait_for(asyncio.open_connection(self.a.addr, self.a.port), self.a.timeout)

    def status_outcome(self, status):
        return "ok" if status == 200 else f"status_{status}"

    async def keepalive_worker(self, period):
        state = [time.monotonic()]
        reader = writer = None
        reused = False
        while not self.stop.is_set():
            await self.pace(state, period)
            if self.stop.is_set():
                break
            started = time.monotonic()
            if writer is not None and reader.at_eof():
                self.ka_closed_seen += 1
                writer.close()
                reader = writer = None
            if writer is None:
                try:
                    reader, writer = await self.connect()
                    reused = False
                except ConnectionRefusedError:
                    self.record("refused", "keepalive", started)
                    continue
                except (OSError, asyncio.TimeoutError):
                    self.record("connect_error", "keepalive", started)
                    continue
            try:
                writer.write(self.req_ka)
                status, body, closes = await asyncio.wait_for(read_response(reader), self.a.timeout)
                self.record(self.status_outcome(status), "keepalive", started, body)
                reused = True
                if closes:
                    self.server_close_announced += 1
                    writer.close()
                    reader = writer = None
                continue
            except Incomplete as e:
                if e.received == 0:
                    outcome = "ka_race" if reused else "reset_in_flight"
                else:
                    outcome = "incomplete"
            except asyncio.TimeoutError:
                outcome = "timeout"
            except (ConnectionResetError, BrokenPipeError, OSError):
                outcome = "ka_race" if reused else "reset_in_flight"
            self.record(outcome, "keepalive", started)
            writer.close()
            reader = writer = None

    async def fresh_worker(self, period):
        state = [time.monotonic()]
        while not self.stop.is_set():
            await self.pace(state, period)
            if self.stop.is_set():
                break
            started = time.monotonic()
            try:
                reader, writer = await self.connect()
            except ConnectionRefusedError:
                self.record("refused", "fresh", started)
                continue
            except (OSError, asyncio.TimeoutError):
                self.record("connect_error", "fresh", started)
                continue
            try:
                writer.write(self.req_fresh)
                status, body, _ = await asyncio.wait_for(read_response(reader), self.a.timeout)
                self.record(self.status_outcome(status), "fresh", started, body)
            except Incomplete as e:
                self.record("reset_in_flight" if e.received == 0 else "incomplete", "fresh", started)
            except asyncio.TimeoutError:
                self.record("timeout", "fresh", started)
            except (ConnectionResetError, BrokenPipeError, OSError):
                self.record("reset_in_flight", "fresh", started)
            finally:
                writer.close()

    async def run(self):
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop.set)
        a = self.a
        tasks = []
        if a.ka_conns and a.ka_rate:
            tasks += [asyncio.create_task(self.keepalive_worker(a.ka_conns / a.ka_rate)) for _ in range(a.ka_conns)]
        if a.fresh_conns and a.fresh_rate:
            tasks += [asyncio.create_task(self.fresh_worker(a.fresh_conns / a.fresh_rate))
                      for _ in range(a.fresh_conns)]
        began = time.monotonic()
        if a.duration:
            try:
                await asyncio.wait_for(self.stop.wait(), a.duration)
            except asyncio.TimeoutError:
                self.stop.set()
        else:
            await self.stop.wait()
        ended = time.monotonic()
        await asyncio.wait(tasks, timeout=a.timeout + 1)
        lat = sorted(self.latencies)

        def pct(p):
            return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000 if lat else None

        total = sum(v for v in self.counts.values())
        result = {
            "began": began, "ended": ended, "seconds": ended - began, "total": total,
            "rate": total / (ended - began) if ended > began else 0,
            "counts": self.counts, "by_mode": self.by_mode,
            "ka_closed_seen": self.ka_closed_seen, "server_close_announced": self.server_close_announced,
            "backends": self.backends, "events": self.events,
            "latency_ms": {"p50": pct(50), "p99": pct(99), "p999": pct(99.9), "max": pct(100)},
        }
        with open(a.out, "w") as f:
            json.dump(result, f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--path", default="/")
    ap.add_argument("--ka-rate", type=float, default=1000)
    ap.add_argument("--ka-conns", type=int, default=4)
    ap.add_argument("--fresh-rate", type=float, default=500)
    ap.add_argument("--fresh-conns", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--duration", type=float, default=0, help="seconds (0: until SIGINT/SIGTERM)")
    ap.add_argument("--backend-key", default='"service":"', help="JSON key naming the backend in a 200 body")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    asyncio.run(Load(a).run())


if __name__ == "__main__":
    main()
