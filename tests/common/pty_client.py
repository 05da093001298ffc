# Shared start of the pty drivers in tests/client_cli.rs and tests/ops_cli.rs:
# runs `BINARY client ADDR` (argv[1], argv[2]) on a pseudo-terminal and gives
# `pid`, `fd`, the terminal output so far in `buf`, and `pump(timeout)`, which
# reads more of it (False once the terminal is closed).
import json, os, pty, select, signal, sys, time
binary, addr = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv(binary, [binary, "client", addr])
buf = b""
def pump(timeout):
    global buf
    r, _, _ = select.select([fd], [], [], timeout)
    if r:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return False
        if not chunk:
            return False
        buf += chunk
    return True
