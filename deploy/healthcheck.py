"""The container's health check: GET /health on this instance; exit 0 when it answers 200, else 1.

Python's urllib only (the image has no curl). /health answers 503 when the database is unreachable,
and checks the Host header like every API path, so the request names the first of
DJANGO_ALLOWED_HOSTS (a wildcard entry becomes a name it matches).
"""

import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python deploy/healthcheck.py`

from proxy_site.settings import health_probe  # (the one module that reads the environment)


def main() -> int:
    port, host = health_probe()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/health", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:  # (urllib's HTTPError for a 503, URLError for a refused connection)
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
