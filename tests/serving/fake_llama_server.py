"""A stand-in for llama.cpp's ``llama-server`` with its command line, run as a child process by
the serving tests. ``FAKE_SERVER_MODE`` says how it behaves: ``serve`` (answers ``/health`` and
``/props``), ``die`` (exits with code 3 while starting), ``silent`` (never answers), ``stubborn``
(serves, and ignores SIGTERM). With ``FAKE_SERVER_RECORD`` set, it writes its process id and
command line there as JSON (``{"pid", "argv"}``) before it serves."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-m", dest="model")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    args, _ = parser.parse_known_args()
    mode = os.environ.get("FAKE_SERVER_MODE", "serve")
    if record := os.environ.get("FAKE_SERVER_RECORD"):
        with open(record, "w") as file:
            json.dump({"pid": os.getpid(), "argv": sys.argv[1:]}, file)
    if mode == "die":
        print("error loading model: the file is damaged", flush=True)
        return 3
    if mode == "silent":
        threading.Event().wait()
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"status": "ok"} if self.path == "/health" else {"model_path": args.model}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    try:
        server = ThreadingHTTPServer((args.host, args.port), Handler)
    except OSError as exc:
        print(f"couldn't bind HTTP server socket, hostname: {args.host}, port: {args.port} ({exc})", flush=True)
        return 1
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
