"""The kernel's own cost of sending a file over loopback, as a control row
for bench/pulls.sh: a minimal HTTP/1.0 server answers `times` GETs with the
file, by sendfile or by read+write of 4 MiB blocks, then prints its CPU
seconds (user + system). Whether sendfile beats a copy depends on the kernel
and the machine; this row shows which, measured beside the registries."""
import os
import resource
import socket
import sys

mode, path, port, times = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
size = os.path.getsize(path)
BLOCK = 4 << 20
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen()
print("ready", flush=True)
before = resource.getrusage(resource.RUSAGE_SELF)
for _ in range(times):
    conn, _ = srv.accept()
    conn.recv(65536)
    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
    with open(path, "rb") as f:
        if mode == "sendfile":
            off = 0
            while off < size:
                off += os.sendfile(conn.fileno(), f.fileno(), off, min(BLOCK, size - off))
        else:
            while block := f.read(BLOCK):
                conn.sendall(block)
    conn.close()
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
print(f"{cpu:.3f}", flush=True)
