"""A Helm chart repository for the tests: serves a directory over HTTPS with basic
auth, and logs each request (method, path, status) so a test can count them.

usage: repo_server.py ROOT CERT KEY USER PASSWORD LOG PORT_FILE
The port (a free one) is written to PORT_FILE once the server listens.
"""

import base64
import functools
import http.server
import os
import ssl
import sys


def main() -> None:
    root, cert, key, user, password, log, port_file = sys.argv[1:8]
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="charts"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            super().do_GET()

        def do_HEAD(self) -> None:
            self.do_GET()

        def log_request(self, code="-", size="-") -> None:
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"{self.command} {self.path} {int(code)} {self.headers.get('User-Agent', '')}\n")

        def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=root)
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    tmp = port_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
