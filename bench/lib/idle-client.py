#!/usr/bin/env python3
"""Open N keep-alive HTTP/1.1 connections, one answered request each, then hold them idle.

  idle-client.py --connect HOST:PORT --conns N [--concurrency 200] [--timeout 30]

Used by bench/idle-conns.sh to measure a proxy's resident memory per idle connection. Every
connection sends one `GET / HTTP/1.1` (Host: HOST:PORT, keep-alive: HTTP/1.1's default) and
reads its complete answer (Content-Length or chunked body); at most --concurrency connections
are being opened or waiting for their answer at any moment, so the proxy's upstream pool and
in-flight buffers stay the size a warm-up of that many connections leaves behind. Then all of
them stay open, idle, until SIGTERM/SIGINT, which closes them and exits.

stdout (one line each, flushed; the script polls for them):
  READY conns=N ok=K failed=F server_close=C elapsed_s=S   all connections answered (or failed)
  CLOSED held=K                                              after SIGTERM, all closed
An answer other than 200, a `Connection: close` header or a socket error counts as failed
(the connection is dropped); the first few failures are described on stderr.
"""
import argparse
import asyncio
import signal
import sys
import time


async def read_answer(reader):
    """Read one HTTP/1.1 answer; returns (status, connection_close)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)  # data + CRLF (size 0: the final CRLF)
            if size == 0:
                break
    elif "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    close = "close" in headers.get("connection", "").lower()
    return status, close


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--connect", required=True, help="HOST:PORT")
    ap.add_argument("--conns", type=int, required=True)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=30.0, help="per connection: connect + answer")
    a = ap.parse_args()
    host, port = a.connect.rsplit(":", 1)
    request = f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    sem = asyncio.Semaphore(a.concurrency)
    held = []  # writers of the connections kept open
    stats = {"failed": 0, "server_close": 0}

    async def one(i):
        async with sem:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), a.timeout)
            except (OSError, asyncio.TimeoutError) as e:
                fail(i, f"connect: {e!r}")
                return
            try:
                writer.write(request)
                status, close = await asyncio.wait_for(read_answer(reader), a.timeout)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
                fail(i, f"answer: {e!r}")
                writer.close()
                return
            if status != 200 or close:
                stats["server_close"] += close
                fail(i, f"status {status}, connection close {close}")
                writer.close()
                return
            held.append(writer)

    def fail(i, what):
        stats["failed"] += 1
        if stats["failed"] <= 5:
            print(f"idle-client: connection {i}: {what}", file=sys.stderr)

    t0 = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(a.conns)))
    print(f"READY conns={a.conns} ok={len(held)} failed={stats['failed']} "
          f"server_close={stats['server_close']} elapsed_s={time.monotonic() - t0:.2f}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for w in held:
        w.close()
    await asyncio.sleep(0.2)  # the transports close their sockets on the next loop turns
    print(f"CLOSED held={len(held)}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
