# One image for the gateway, the worker and the schema registration job;
# docker-compose.yml picks the process with `command`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Only what the package build and the processes need; tests and local-stack
# state stay out of the image.
COPY pyproject.toml README.md ./
COPY contracts/ ./contracts/
COPY gateway/ ./gateway/
COPY worker/ ./worker/
COPY scripts/ ./scripts/

# The build leaves build/ and *.egg-info behind in the source tree; drop them so
# the copy in /app matches what was installed.
RUN pip install --no-cache-dir . \
    && rm -rf build ./*.egg-info \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin gatekeeper

USER gatekeeper

EXPOSE 5000
