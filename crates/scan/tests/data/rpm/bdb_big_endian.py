"""Writes Packages-be64k.gz: a Berkeley DB hash database laid out as rpm's
`Packages` (key: header number as 4 bytes in the file's byte order, value:
the header blob; key 0 holds the next header number), but big-endian and
with 64 KiB pages, so that headers sit inline on hash pages instead of on
overflow pages. The writer is Berkeley DB 5.3.28 itself (Debian 12's
libdb5.3-dev) through PyPI's `berkeleydb` 18.1.18; the headers are those
rpm 4.18 wrote into rpmdb.sqlite.gz (see make.sh).

    python3 -m venv venv && venv/bin/pip install berkeleydb==18.1.18
    venv/bin/python bdb_big_endian.py
"""

import gzip
import os
import sqlite3
import struct
import tempfile

from berkeleydb import db

here = os.path.dirname(os.path.abspath(__file__))
with tempfile.TemporaryDirectory() as work:
    sqlite_path = os.path.join(work, "rpmdb.sqlite")
    with open(sqlite_path, "wb") as f:
        f.write(gzip.decompress(open(os.path.join(here, "rpmdb.sqlite.gz"), "rb").read()))
    rows = sqlite3.connect(sqlite_path).execute("SELECT hnum, blob FROM Packages ORDER BY hnum").fetchall()

    path = os.path.join(work, "Packages")
    d = db.DB()
    d.set_lorder(4321)
    d.set_pagesize(65536)
    d.open(path, dbtype=db.DB_HASH, flags=db.DB_CREATE)
    d.put(struct.pack(">I", 0), struct.pack(">I", max(h for h, _ in rows) + 1))
    for hnum, blob in rows:
        d.put(struct.pack(">I", hnum), blob)
    d.close()
    with open(path, "rb") as f, open(os.path.join(here, "Packages-be64k.gz"), "wb") as out:
        out.write(gzip.compress(f.read(), compresslevel=9, mtime=0))
