"""A registry token service for the tests (the Docker token flow): answers
GET /token?service=…&scope=… given the right basic credentials with a JWT the
distribution registry trusts (RS256, signed by openssl with KEY, the certificate CERT in
its x5c header, CERT in the registry's rootcertbundle). Logs each request.

usage: token_server.py CERT KEY USER PASSWORD ISSUER LOG PORT_FILE
"""

import base64
import http.server
import json
import os
import subprocess
import sys
import time
import urllib.parse


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main() -> None:
    cert, key, user, password, issuer, log, port_file = sys.argv[1:8]
    der = subprocess.run(
        ["openssl", "x509", "-in", cert, "-outform", "DER"], check=True, capture_output=True
    ).stdout
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlparse(self.path)
            query = urllib.parse.parse_qs(url.query)
            if url.path != "/token" or self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            access = []
            for scope in query.get("scope", []):
                kind, name, actions = scope.split(":", 2)
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
            now = int(time.time())
            header = {"alg": "RS256", "typ": "JWT", "x5c": [base64.b64encode(der).decode()]}
            claims = {
                "iss": issuer,
                "sub": user,
                "aud": query.get("service", [""])[0],
                "exp": now + 300,
                "nbf": now - 10,
                "iat": now,
                "jti": f"{now}-{os.getpid()}",
                "access": access,
            }
            signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
            signature = subprocess.run(
                ["openssl", "dgst", "-sha256", "-sign", key],
                input=signing_input.encode(),
                check=True,
                capture_output=True,
            ).stdout
            token = f"{signing_input}.{b64url(signature)}"
            body = json.dumps({"token": token, "access_token": token}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_request(self, code="-", size="-") -> None:
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"{self.command} {self.path} {int(code)} {self.headers.get('User-Agent', '')}\n")

        def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tmp = port_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
