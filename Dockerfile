# The product image: worker, receiver, codec server, emulator, CLI and set-up jobs all run
# from it (docker-compose.yml picks the command). Build: docker build -t d1-card-orders .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# An unprivileged user; /secrets and /state are volume mount points it owns (a new named
# volume takes the ownership of the directory it is mounted on).
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin d1 \
    && mkdir -p /secrets /state \
    && chown d1 /secrets /state

# Dependencies first (a layer that changes only with pyproject.toml), then the code.
COPY pyproject.toml README.md ./
RUN mkdir -p d1 workflows activities receiver emulator starter stack security observability \
    && touch worker.py settings.py temporal_client.py \
    && pip install . \
    && pip uninstall -y d1-card-orders

COPY d1 ./d1
COPY contracts ./contracts
COPY workflows ./workflows
COPY activities ./activities
COPY receiver ./receiver
COPY emulator ./emulator
COPY starter ./starter
COPY stack ./stack
COPY security ./security
COPY observability ./observability
COPY config ./config
COPY deploy ./deploy
COPY samples ./samples
COPY worker.py settings.py temporal_client.py ./
# Bytecode shipped in the image: the workflow sandbox re-imports workflow modules per order.
RUN python -m compileall -q d1 workflows activities

USER d1
# Processes run from /app (python -m worker, python -m receiver, ...): modules resolve from source.
CMD ["python", "-m", "worker"]
