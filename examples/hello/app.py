"""hello: the smallest app of docs/tutorial.md, on Python's standard library only.

GET / answers a greeting; GET /add/X/Y answers X + Y.
"""

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GREETING = "hello from the pod"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        parts = self.path.strip("/").split("/")
        if parts == [""]:
            body = GREETING
        elif len(parts) == 3 and parts[0] == "add":
            try:
                body = str(int(parts[1]) + int(parts[2]))
            except ValueError:
                self.send_error(400, "x and y must be integers")
                return
        else:
            self.send_error(404)
            return
        data = (body + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    ThreadingHTTPServer(("", port), Handler).serve_forever()
