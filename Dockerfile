# The product image: worker, receiver, issuer API, codec server, emulator, CLI and set-up jobs all run
# from it (docker-compose.yml picks the command). Build: docker build -t d1-card-orders .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# An unprivileged user with a fixed group: the Temporal server and UI images read their
# certificates from volumes this image's bootstrap job writes (0640, group 10001), so
# docker-compose.yml gives them that group (group_add) instead of world-readable keys.
# /secrets, /state and /bootstrap/* are volume mount points it owns (a new named volume
# takes the ownership and mode of the directory it is mounted on).
RUN groupadd --system --gid 10001 d1 \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin d1 \
    && mkdir -p /secrets /state /bootstrap/work /bootstrap/out/worker /bootstrap/out/receiver \
       /bootstrap/out/emulator /bootstrap/out/emulator-state /bootstrap/out/codec-server \
       /bootstrap/out/temporal-setup /bootstrap/out/temporal /bootstrap/out/temporal-ui \
    && chown -R d1:d1 /secrets /state /bootstrap \
    && chmod -R 0750 /secrets /state /bootstrap

# Dependencies first (a layer that changes only with pyproject.toml), then the code.
COPY pyproject.toml README.md ./
RUN mkdir -p d1 workflows activities events receiver emulator starter issuer_api stack security observability settings \
    && touch worker.py temporal_client.py \
    && pip install . \
    && pip uninstall -y d1-card-orders

COPY d1 ./d1
COPY contracts ./contracts
COPY workflows ./workflows
COPY activities ./activities
COPY events ./events
COPY receiver ./receiver
COPY emulator ./emulator
COPY starter ./starter
COPY issuer_api ./issuer_api
COPY stack ./stack
COPY security ./security
COPY observability ./observability
COPY config ./config
COPY deploy ./deploy
COPY samples ./samples
COPY settings ./settings
COPY worker.py temporal_client.py ./
# Bytecode shipped in the image for everything the processes load: the workflow sandbox
# re-imports the workflow modules per order (same list as the Makefile's BYTECODE).
RUN python -m compileall -q d1 contracts workflows activities events receiver starter issuer_api security observability stack \
    settings worker.py temporal_client.py

USER d1
# Processes run from /app (python -m worker, python -m receiver, ...): modules resolve from source.
CMD ["python", "-m", "worker"]
