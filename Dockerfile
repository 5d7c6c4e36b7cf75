# The gateway's image: `docker build -t django-ai-gateway .` (compose.yaml builds it too).
# Production mode, plain HTTP on port 8000 behind a TLS-terminating proxy (README, "Deployment").
# It refuses to start without DJANGO_SECRET_KEY and DJANGO_ALLOWED_HOSTS; give it DATABASE_URL
# (Postgres), REDIS_URL and GATEWAY_ENCRYPTION_KEYS too.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The dependencies first, read from pyproject.toml (no test extras): this layer is reused as long
# as they do not change, however often the code does.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The package itself, installed in place: the code runs from /app (manage.py beside it).
COPY . .
RUN pip install --no-deps --editable .

# Static files collected at build time (production's content-hashed, gzipped copies in
# /app/build/static), so a container starts without writing anything: hence --no-collectstatic
# below. (The secret and host name here exist for this one command only; nothing is stored.)
RUN DJANGO_DEBUG=false DJANGO_SECRET_KEY=collectstatic-only-not-a-secret DJANGO_ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --noinput --verbosity 0

# Not root: the code and static files stay root's, read-only to the user that runs the gateway.
# Its home is its own: gunicorn (25.1 and later) puts its control socket in ~/.gunicorn.
RUN useradd --system --create-home --home-dir /home/gateway --shell /usr/sbin/nologin gateway
USER gateway

ENV DJANGO_DEBUG=false \
    GATEWAY_BIND=0.0.0.0:8000
EXPOSE 8000

# /health: 200 while the database answers (deploy/healthcheck.py; Python's urllib, no curl).
HEALTHCHECK --interval=15s --timeout=6s --start-period=60s --retries=3 \
    CMD ["python", "deploy/healthcheck.py"]

# gateway_serve migrates (unless --no-migrate), loads the default registry into an empty database,
# then execs gunicorn, which becomes PID 1 and shuts down gracefully on SIGTERM. Arguments given to
# `docker run IMAGE ...` or compose's `command:` are appended (e.g. --no-migrate, --workers 4).
ENTRYPOINT ["python", "manage.py", "gateway_serve", "--no-collectstatic"]
