#!/usr/bin/env python3
"""The original tutorial's server, as a benchmark baseline: naive_server.py [PORT] (0 picks one)."""
import socket
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", port))
print("listening on %s:%d" % sock.getsockname(), flush=True)
while True:
    msg, addr = sock.recvfrom(65535)
    sock.sendto(msg.upper(), addr)
