#!/usr/bin/env python3
"""An image server for the installer's resume tests, on Python's http.server.

It serves one file at any path and answers Range and If-Range the way RFC 9110 says a file
server does (14.2, 13.1.5): a range of the current version when If-Range is absent or names
the current version by its ETag (strong comparison) or by its exact Last-Modified date,
otherwise the whole current version with 200.

    http_resume_server.py V1 V2 --cut-after N [--etag strong|weak|none] [--last-modified]
                          [--ignore-range] [--change]

The first GET is cut (connection closed) after N body bytes. With --change, every later
request gets version V2 (another file of the same length, with its own ETag and a later
Last-Modified): the file changed on the server while the download was broken.

It prints the port it listens on (127.0.0.1) as its first line, then one JSON line per request:
{"range": ..., "if_range": ...}. It ends when stdin closes.
"""

import argparse
import email.utils
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("v1")
    parser.add_argument("v2")
    parser.add_argument("--cut-after", type=int, required=True)
    parser.add_argument("--etag", choices=["strong", "weak", "none"], default="none")
    parser.add_argument("--last-modified", action="store_true")
    parser.add_argument("--ignore-range", action="store_true")
    parser.add_argument("--change", action="store_true")
    args = parser.parse_args()

    versions = []
    # Version 1 was modified an hour ago, version 2 a minute ago: both dates strong (a second
    # or more before the response's Date).
    for number, (path, age) in enumerate([(args.v1, 3600), (args.v2, 60)], start=1):
        with open(path, "rb") as file:
            body = file.read()
        etag = {"strong": f'"v{number}"', "weak": f'W/"v{number}"', "none": None}[args.etag]
        modified = email.utils.formatdate(time.time() - age, usegmt=True)
        versions.append({"body": body, "etag": etag, "modified": modified})

    state = {"requests": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def do_GET(self):
            # The installer looks for a published checksum beside the image (IMAGE.sha256sum,
            # IMAGE.sha256); this server publishes none, as a plain file server would answer.
            if self.path.endswith((".sha256sum", ".sha256")):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            with lock:
                number = state["requests"]
                state["requests"] += 1
                print(
                    json.dumps(
                        {
                            "range": self.headers.get("Range"),
                            "if_range": self.headers.get("If-Range"),
                        }
                    ),
                    flush=True,
                )
            version = versions[1] if args.change and number > 0 else versions[0]
            body = version["body"]
            start = self.range_start(version)
            if start is not None and start < len(body):
                self.send_response(206)
                self.send_header(
                    "Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}"
                )
                part = body[start:]
            else:
                self.send_response(200)
                part = body
            self.send_header("Content-Length", str(len(part)))
            self.send_header("Connection", "close")
            if version["etag"]:
                self.send_header("ETag", version["etag"])
            if args.last_modified:
                self.send_header("Last-Modified", version["modified"])
            self.end_headers()
            if number == 0:
                self.wfile.write(part[: args.cut_after])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(part)

        def range_start(self, version):
            """The first byte asked for, when the range is to be served."""
            if args.ignore_range:
                return None
            text = self.headers.get("Range", "")
            if not text.startswith("bytes=") or not text.endswith("-"):
                return None
            if_range = self.headers.get("If-Range")
            if if_range is not None:
                strong = version["etag"] and not version["etag"].startswith("W/")
                matches = (strong and if_range == version["etag"]) or (
                    args.last_modified and if_range == version["modified"]
                )
                if not matches:
                    return None
            try:
                return int(text[len("bytes=") : -1])
            except ValueError:
                return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
