"""The container's health check: GET /health on this instance; exit 0 when it answers 200, else 1.

Python's urllib only (the image has no curl). /health answers 503 when the database is unreachable,
and checks the Host header like every API path, so the request names the first of
DJANGO_ALLOWED_HOSTS (a wildcard entry becomes a name it matches).
"""

import os
import sys
import urllib.request


def main() -> int:
    port = os.environ.get("GATEWAY_BIND", "127.0.0.1:8000").rpartition(":")[2]
    host = (os.environ.get("DJANGO_ALLOWED_HOSTS") or "localhost").split(",")[0].strip()
    host = "localhost" if host in ("", "*") else ("health" + host if host.startswith(".") else host)
    request = urllib.request.Request(f"http://127.0.0.1:{port}/health", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:  # (urllib's HTTPError for a 503, URLError for a refused connection)
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
