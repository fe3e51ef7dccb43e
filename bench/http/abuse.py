#!/usr/bin/env python3
"""Abusive clients for bench/http/abuse.sh, run until SIGTERM, then print what they got.

  abuse.py idle BASE COUNT FIRST_ADDRESS
      COUNT connections from loopback addresses FIRST_ADDRESS, +1, ... (250 each, under the
      per-client cap, as many hosts would), each sending one byte of a request head every 5 s;
      a connection the server closes is opened again at once.
  abuse.py follow BASE JOB TOKEN_FILE PER_TOKEN
      PER_TOKEN live log streams (GET /api/v1/jobs/JOB/logs?follow=true) for each token in
      TOKEN_FILE, read as they come; a stream that ends is opened again.
"""
import ipaddress
import selectors
import signal
import socket
import sys
import time

stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)


def host_port(base):
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


def idle(base, count, first):
    server = host_port(base)
    first = ipaddress.ip_address(first)
    sel = selectors.DefaultSelector()
    stats = {"opened": 0, "closed_by_server": 0, "refused": 0}

    def open_one(n):
        sock = socket.socket()
        sock.setblocking(True)
        sock.bind((str(first + n // 250), 0))
        try:
            sock.connect(server)
        except OSError:
            stats["refused"] += 1
            sock.close()
            return
        sock.setblocking(False)
        sock.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        sel.register(sock, selectors.EVENT_READ, n)
        stats["opened"] += 1

    for n in range(count):
        open_one(n)
    last_drip = time.monotonic()
    while not stop:
        for key, _ in sel.select(timeout=0.5):
            try:
                data = key.fileobj.recv(4096)
            except OSError:
                data = b""
            if not data:
                sel.unregister(key.fileobj)
                key.fileobj.close()
                stats["closed_by_server"] += 1
                open_one(key.data)
        if time.monotonic() - last_drip > 5:
            last_drip = time.monotonic()
            for key in list(sel.get_map().values()):
                try:
                    key.fileobj.send(b"X")
                except OSError:
                    pass
    print(f"idle: {count} wanted, {stats}", flush=True)


def follow(base, job, token_file, per_token):
    server = host_port(base)
    tokens = [line.strip() for line in open(token_file) if line.strip()]
    sel = selectors.DefaultSelector()
    stats = {"opened": 0, "refused_429": 0, "bytes": 0, "ended": 0}

    def open_one(token):
        sock = socket.create_connection(server)
        request = f"GET /api/v1/jobs/{job}/logs?follow=true HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
        sock.sendall(request.encode())
        head = sock.recv(12)
        if head[9:12] == b"429":
            stats["refused_429"] += 1
            sock.close()
            return
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ, token)
        stats["opened"] += 1

    for token in tokens:
        for _ in range(per_token):
            open_one(token)
    while not stop:
        for key, _ in sel.select(timeout=0.5):
            try:
                data = key.fileobj.recv(65536)
            except OSError:
                data = b""
            stats["bytes"] += len(data)
            if not data:
                sel.unregister(key.fileobj)
                key.fileobj.close()
                stats["ended"] += 1
                if not stop:
                    open_one(key.data)
    print(f"follow: {len(tokens)} users x {per_token}, {stats}", flush=True)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "idle":
        idle(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif mode == "follow":
        follow(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        sys.exit(f"unknown mode {mode}")
