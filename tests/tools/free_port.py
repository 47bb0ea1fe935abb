#!/usr/bin/env python3
"""Prints N (default 1) distinct TCP ports on 127.0.0.1 that are free now,
one per line, for tests that start servers on them.

A port the kernel picks (bind to port 0) comes from its ephemeral range,
where every outgoing connection of every process also takes its local port:
between the pick and the server's bind, a test running alongside can take
it (ctest runs tests in parallel), and the server then fails with "Address
already in use". So the ports are drawn at random below that range (from
10000 up), where no outgoing connection lands, each checked by binding it;
the kernel's own pick only when the range leaves no room below it.
"""
import random
import socket
import sys


def ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def bindable(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    low, top = 10000, ephemeral_low()
    ports = []
    for _ in range(1000 * n):
        if len(ports) == n or top - low < 1000:
            break
        p = random.randrange(low, top)
        if p not in ports and bindable(p):
            ports.append(p)
    while len(ports) < n:  # no room below the range: the kernel's pick
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if p not in ports:
            ports.append(p)
    print("\n".join(map(str, ports)))


if __name__ == "__main__":
    main()
