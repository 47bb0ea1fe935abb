#!/usr/bin/python3
"""iperf-like TCP throughput check for the emulated cluster (stdlib only).

  netcheck.py server HOST PORT            accept one connection, count bytes, print Mbit/s as JSON
  netcheck.py client HOST PORT SECONDS    send as fast as possible for SECONDS
  netcheck.py busy SECONDS                spin SECONDS of wall clock; print the CPU share obtained
  netcheck.py echo HOST PORT SECONDS      echo UDP datagrams back for SECONDS
  netcheck.py probe HOST PORT COUNT       send COUNT numbered UDP probes 20 ms apart to an echo; print
                                          the median round trip (ms) and the fraction never answered
"""
import json, os, socket, sys, time

def server(host, port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port)); s.listen(1)
    c, _ = s.accept()
    n = 0; t0 = None; t1 = None
    while True:
        b = c.recv(1 << 16)
        if not b: break
        if t0 is None: t0 = time.monotonic()
        n += len(b); t1 = time.monotonic()
    dt = (t1 - t0) if t0 and t1 > t0 else float('nan')
    print(json.dumps({"bytes": n, "seconds": round(dt, 3), "mbit_per_s": round(n * 8 / dt / 1e6, 3)}))

def client(host, port, secs):
    for _ in range(50):
        try:
            c = socket.create_connection((host, port)); break
        except OSError:
            time.sleep(0.1)
    buf = b'\0' * (1 << 16); end = time.monotonic() + secs
    while time.monotonic() < end: c.sendall(buf)
    c.close()

def busy(secs):
    t0 = time.monotonic(); c0 = time.process_time()
    while time.monotonic() - t0 < secs: pass
    print(json.dumps({"wall_s": round(time.monotonic() - t0, 3), "cpu_s": round(time.process_time() - c0, 3),
                      "cpu_share": round((time.process_time() - c0) / (time.monotonic() - t0), 3)}))

def echo(host, port, secs):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((host, port))
    end = time.monotonic() + secs
    while (left := end - time.monotonic()) > 0:
        s.settimeout(left)
        try:
            b, peer = s.recvfrom(64)
        except socket.timeout:
            break
        s.sendto(b, peer)

def probe(host, port, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setblocking(False)
    sent = {}; rtts = []
    def take():
        while True:
            try:
                b, _ = s.recvfrom(64)
            except BlockingIOError:
                return
            i = int(b)
            if i in sent: rtts.append((time.monotonic() - sent.pop(i)) * 1e3)
    for i in range(count):
        sent[i] = time.monotonic(); s.sendto(b'%d' % i, (host, port))
        end = time.monotonic() + 0.02
        while time.monotonic() < end: take(); time.sleep(0.001)
    end = time.monotonic() + 1
    while sent and time.monotonic() < end: take(); time.sleep(0.005)
    rtts.sort()
    print(json.dumps({"probes": count, "answered": len(rtts), "lost": round(len(sent) / count, 4),
                      "rtt_ms": round(rtts[len(rtts) // 2], 2) if rtts else None}))

if __name__ == '__main__':
    a = sys.argv[1:]
    if a[:1] == ['server']: server(a[1], int(a[2]))
    elif a[:1] == ['client']: client(a[1], int(a[2]), float(a[3]))
    elif a[:1] == ['busy']: busy(float(a[1]))
    elif a[:1] == ['echo']: echo(a[1], int(a[2]), float(a[3]))
    elif a[:1] == ['probe']: probe(a[1], int(a[2]), int(a[3]))
    else: sys.exit(__doc__)
