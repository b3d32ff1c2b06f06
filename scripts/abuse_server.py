#!/usr/bin/env python3
"""Attacks the `serve` example on loopback the way a hostile or broken caller could, then
checks that the server still answers, that its peak resident memory stayed under a bound,
and that it stops cleanly on Ctrl-C.

    abuse_server.py SERVE_BINARY REGISTRY_DIR [--max-rss-mib N] [--header-timeout-secs S]

The server is started on the quickstart registry under REGISTRY_DIR (the `serve` example
registers three versions there when it holds none). Every attack is bounded in count and
in time; each prints one line with what it saw. The exit code is 0 when every check held,
1 otherwise, naming the checks that failed.

The memory bound is what the server's own limits allow: requests in memory (256 MiB by
default, each counted as 12 times its body), the shadow recorder (64 MiB), shadow
predictions, the models and the runtime. Before those limits, one 224 KiB body of wide
records took 2.5 GB; with the budget counting bodies alone, 24 bodies of 13 MiB at once
took 2.8 GB.
"""

import argparse
import json
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

RECORD = {
    "CustomerID": 1240,
    "Product": "Product A",
    "Amount": 120.5,
    "MaxProductAmount": 250.0,
    "MaxDifferenceRatio": 0.52,
    "transactionCount": 3,
}

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print(f"    FAILED: {message}", flush=True)


def rss_kib(pid, field):
    """`VmRSS` (now) or `VmHWM` (the peak) of a process, in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def request(host, port, method, path, body=b"", headers=None, timeout=60.0):
    """One request on a new connection: (status, body, seconds). Status 0 means the server
    closed the connection or reset it without an answer."""
    started = time.monotonic()
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    if body or method == "POST":
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            try:
                conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # an early answer (413) closes the connection while the body is sent
            answer = read_answer(conn)
    except OSError as e:
        print(f"    {method} {path}: {e}", flush=True)
        answer = None
    status, payload = answer if answer else (0, b"")
    return status, payload, time.monotonic() - started


def read_answer(conn):
    """Reads one whole answer (up to the connection closing); None when there is none."""
    data = b""
    try:
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    if not data.startswith(b"HTTP/1.1 "):
        return None
    return int(data[9:12]), data.split(b"\r\n\r\n", 1)[-1]


def invocations(host, port, payload, **kwargs):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return request(host, port, "POST", "/invocations", body, **kwargs)


def parallel(count, task):
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda i: task(i), range(count)))


def attack_wide_records(host, port):
    # Every record carries keys no other record has: parsing must look only for the
    # signature's columns, in time and memory linear in the body.
    records = [dict(RECORD, **{f"k{i}_{j}": 0 for j in range(4)}) for i in range(1200)]
    body = json.dumps({"dataframe_records": records}).encode()
    results = parallel(6, lambda _: invocations(host, port, body))
    statuses = sorted({status for status, _, _ in results})
    slowest = max(seconds for _, _, seconds in results)
    print(f"    wide records: 6 bodies of {len(body) // 1024} KiB at once -> {statuses}, slowest {slowest:.2f} s")
    # Refused, as records whose other fields would make a frame far larger than the body.
    check(statuses == [400], f"wide records answered {statuses}, not 400")
    check(all(b"outside the model" in payload for _, payload, _ in results),
          f"wide records were refused for another reason: {results[0][1][:300]!r}")
    check(slowest < 20, f"wide records took {slowest:.1f} s")
    # Unknown keys are ignored, as MLflow ignores them, when they cost no more than the body.
    records = [dict(RECORD, comment=f"note {i}") for i in range(2000)]
    status, payload, _ = invocations(host, port, {"dataframe_records": records})
    check(status == 200, f"records with one unknown key answered {status}: {payload[:300]!r}")


def attack_large_bodies(host, port):
    # Declared sizes over the body limit are refused before the body is read.
    def declared(_):
        with socket.create_connection((host, port), timeout=30) as conn:
            conn.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 52428800\r\n\r\n"
            )
            answer = read_answer(conn)
            return answer[0] if answer else 0

    statuses = sorted(set(parallel(16, declared)))
    print(f"    16 bodies declaring 50 MiB at once -> {statuses}")
    check(statuses == [413], f"bodies declaring 50 MiB answered {statuses}, not 413")

    # A chunked body has no declared size: it is cut off at the body limit. The answer is
    # looked for after every chunk sent, as the server answers (and closes) before the end.
    def chunked(_):
        with socket.create_connection((host, port), timeout=60) as conn:
            conn.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            chunk = b"[" + b"1," * (32 * 1024)
            frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            sent = 0
            try:
                for _ in range(50 * 1024 * 1024 // len(chunk)):
                    if select.select([conn], [], [], 0)[0]:
                        break
                    conn.sendall(frame)
                    sent += len(frame)
                else:
                    conn.sendall(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # closed at the limit: its answer may have been lost with the connection
            except socket.timeout:
                return (None, sent)
            answer = read_answer(conn)
            return (answer[0] if answer else None, sent)

    outcomes = parallel(8, chunked)
    print(f"    8 chunked 50 MiB bodies at once -> {sorted(set(o for o, _ in outcomes), key=str)}, "
          f"cut off after at most {max(s for _, s in outcomes) // (1024 * 1024)} MiB")
    # The server answers 413 at the body limit (16 MiB) and closes; a client still sending
    # may find the connection reset before it reads the answer.
    check(all(o in (413, None) and s < 32 * 1024 * 1024 for o, s in outcomes),
          f"chunked 50 MiB bodies were not cut off at the limit: {outcomes}")

    # Bodies under the limit, many at once: the body memory budget makes them take turns.
    body = json.dumps({"dataframe_records": [RECORD] * 100_000}).encode()
    results = parallel(24, lambda _: invocations(host, port, body, timeout=120))
    statuses = sorted({status for status, _, _ in results})
    print(f"    24 bodies of {len(body) // (1024 * 1024)} MiB at once -> {statuses}")
    check(set(statuses) <= {200, 503, 504}, f"24 large bodies answered {statuses}")


def attack_slow_and_idle(host, port, header_timeout):
    # Slow headers (a byte at a time) and idle keep-alive connections are both closed once
    # the header read timeout passes.
    deadline = header_timeout + 3

    def slow(_):
        started = time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=deadline + 5) as conn:
                try:
                    for byte in b"POST /invocations HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000:
                        conn.sendall(bytes([byte]))
                        time.sleep(0.25)
                        if time.monotonic() - started > deadline + 5:
                            return None
                except (BrokenPipeError, ConnectionResetError):
                    pass
                read_answer(conn)
        except OSError:
            return None
        return time.monotonic() - started

    def idle(_):
        try:
            with socket.create_connection((host, port), timeout=deadline + 5) as conn:
                body = json.dumps({"dataframe_records": [RECORD]}).encode()
                conn.sendall(
                    b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                answered = conn.recv(65536)
                started = time.monotonic()
                while conn.recv(65536):
                    pass
        except OSError:
            return None
        return time.monotonic() - started if answered.startswith(b"HTTP/1.1 200") else None

    with ThreadPoolExecutor(max_workers=400) as pool:
        slow_closed = pool.map(slow, range(200))
        idle_closed = pool.map(idle, range(200))
        slow_closed, idle_closed = list(slow_closed), list(idle_closed)
    for name, closed in (("slow-header", slow_closed), ("idle keep-alive", idle_closed)):
        open_still = sum(1 for c in closed if c is None)
        latest = max((c for c in closed if c is not None), default=0.0)
        print(f"    200 {name} connections: closed by the server within {latest:.1f} s, {open_still} not closed")
        check(open_still == 0 and latest <= deadline, f"{name} connections stayed open ({open_still} after {deadline} s)")


def attack_connection_flood(host, port):
    # More connections than the server keeps open: the extra ones wait in the backlog.
    conns = []
    for _ in range(2000):
        try:
            conns.append(socket.create_connection((host, port), timeout=5))
        except OSError:
            break
    print(f"    2,000 connections opened at once: {len(conns)} accepted by the kernel")
    check(len(conns) > 1024, f"only {len(conns)} connections could be opened, no more than the server keeps")
    for conn in conns:
        conn.close()
    status, _, seconds = invocations(host, port, {"dataframe_records": [RECORD]}, timeout=30)
    print(f"    after closing them, one request -> {status} in {seconds:.2f} s")
    check(status == 200, f"the server answered {status} after the connection flood")


def with_raw_value(column, raw):
    """A one-record body whose `column` holds `raw`, as written."""
    body = json.dumps({"dataframe_records": [dict(RECORD, **{column: "RAW"})]}).encode()
    return body.replace(b'"RAW"', raw)


def attack_malformed(host, port):
    bodies = {
        "deep JSON": b'{"dataframe_split": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
        "a huge number": with_raw_value("Amount", b"1e99999"),
        "a long integer": with_raw_value("CustomerID", b"9" * 100_000),
        "not JSON": b"\xff\xfe" * 10_000,
        "a wrong type": json.dumps({"dataframe_records": [dict(RECORD, Amount="x" * 100_000)]}).encode(),
    }
    for name, body in bodies.items():
        status, payload, _ = invocations(host, port, body)
        print(f"    {name} -> {status} ({len(payload)} bytes of error)")
        check(400 <= status < 500, f"{name} answered {status}, not a 4xx")
        check(len(payload) <= 4096, f"the error for {name} echoes {len(payload)} bytes")


def attack_shadow_recording(host, port):
    # Every answered request is also scored by the shadow route and recorded: the recorder
    # keeps within its byte limit however many arrive.
    body = json.dumps({"dataframe_records": [RECORD] * 2000}).encode()
    results = parallel(16, lambda _: [invocations(host, port, body)[0] for _ in range(25)])
    statuses = sorted({s for batch in results for s in batch})
    print(f"    400 requests of 2,000 records -> {statuses}")
    check(statuses == [200], f"shadowed requests answered {statuses}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("serve_binary")
    parser.add_argument("registry_dir")
    parser.add_argument("--max-rss-mib", type=int, default=1536)
    parser.add_argument("--header-timeout-secs", type=int, default=2)
    args = parser.parse_args()
    # Thousands of sockets at once, here and in the server (which inherits the limit).
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192, hard))

    server = subprocess.Popen(
        [args.serve_binary, "--dir", args.registry_dir, "--port", "0", "--log-level", "warn",
         "--header-read-timeout-secs", str(args.header_timeout_secs)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        address = None
        for line in server.stdout:
            print(line, end="", flush=True)
            if "serving on http://" in line:
                address = line.split("http://", 1)[1].split("/", 1)[0]
                break
        if address is None:
            sys.exit(f"the server stopped before listening (exit code {server.wait()})")
        threading.Thread(target=lambda: [print(l, end="") for l in server.stdout], daemon=True).start()
        host, port = address.rsplit(":", 1)
        port = int(port)
        for _ in range(20):
            invocations(host, port, {"dataframe_records": [RECORD]})
        before = rss_kib(server.pid, "VmRSS") // 1024
        print(f"==> server pid {server.pid} on {address}: {before} MiB resident after 20 requests")

        started = time.monotonic()
        for attack in (
            attack_wide_records,
            attack_large_bodies,
            lambda h, p: attack_slow_and_idle(h, p, args.header_timeout_secs),
            attack_connection_flood,
            attack_malformed,
            attack_shadow_recording,
        ):
            attack(host, port)
            check(server.poll() is None, f"the server exited with {server.returncode}")
            if server.poll() is not None:
                break
            now, peak = rss_kib(server.pid, "VmRSS") // 1024, rss_kib(server.pid, "VmHWM") // 1024
            print(f"      resident now {now} MiB, peak so far {peak} MiB", flush=True)
        elapsed = time.monotonic() - started

        if server.poll() is None:
            status, _, _ = request(host, port, "GET", "/health")
            check(status == 200, f"/health answered {status} after the attacks")
            status, _, _ = invocations(host, port, {"dataframe_records": [RECORD]})
            check(status == 200, f"a plain request answered {status} after the attacks")
            peak = rss_kib(server.pid, "VmHWM") // 1024
            now = rss_kib(server.pid, "VmRSS") // 1024
            print(f"==> after {elapsed:.0f} s of attacks: {now} MiB resident, peak {peak} MiB "
                  f"(bound {args.max_rss_mib} MiB)")
            check(peak <= args.max_rss_mib, f"peak resident memory {peak} MiB is over {args.max_rss_mib} MiB")
            server.send_signal(signal.SIGINT)
            try:
                code = server.wait(timeout=40)
                check(code == 0, f"the server exited with {code} on Ctrl-C")
            except subprocess.TimeoutExpired:
                check(False, "the server did not stop within 40 s of Ctrl-C")
    finally:
        if server.poll() is None:
            server.kill()
    if failures:
        print(f"{len(failures)} checks failed:", *failures, sep="\n  ", file=sys.stderr)
        sys.exit(1)
    print("==> every check held")


if __name__ == "__main__":
    main()
