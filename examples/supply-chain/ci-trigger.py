"""The CI trigger: the git server's webhook receiver. Each push of the main
branch ({"ref": "refs/heads/main", "commit": "<40 hex>"}) queues a CI job
(ci.sh) with the next build number; other refs and anything malformed are
refused. Jobs run one at a time, in order; what each printed is appended
to the log. On SIGTERM the running job is stopped with it.

Usage: ci-trigger.py HOST:PORT CI_SCRIPT LOG
"""
import http.server
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading

jobs = queue.Queue()
running = []


def worker(script, log):
    build = 0
    while True:
        commit = jobs.get()
        build += 1
        env = dict(os.environ, COMMIT=commit, BUILD=str(build))
        job = subprocess.Popen([script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
        running.append(job)
        out, err = job.communicate()
        running.remove(job)
        with open(log, "a") as f:
            f.write(out)
            if job.returncode != 0:
                f.write(f"build {build}: FAILED ({job.returncode})\n{err}\n")


def stop(*_):
    for job in list(running):
        os.killpg(job.pid, signal.SIGTERM)
    sys.exit(0)


class Trigger(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        try:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            ok = body["ref"] == "refs/heads/main" and re.fullmatch(r"[0-9a-f]{40}", body["commit"])
        except (KeyError, TypeError, ValueError):
            ok = False
        if ok:
            jobs.put(body["commit"])
        self.send_response(202 if ok else 400)
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, stop)
    host, port = sys.argv[1].rsplit(":", 1)
    threading.Thread(target=worker, args=(sys.argv[2], sys.argv[3]), daemon=True).start()
    http.server.HTTPServer((host, int(port)), Trigger).serve_forever()
