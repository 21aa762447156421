# The web app and the worker share one image; the GPU worker uses Dockerfile's "gpu" target.
FROM python:3.11-slim AS base
WORKDIR /srv
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md alembic.ini ./
COPY app app
COPY trainer trainer
COPY migrations migrations
COPY templates templates
COPY static static
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install '.[train]'
EXPOSE 8000
# exec: the server replaces the shell as PID 1, so `docker stop`'s SIGTERM reaches it.
CMD ["sh", "-c", "rlhf db upgrade && exec rlhf serve --host 0.0.0.0 --port 8000"]

FROM base AS gpu
RUN pip install --force-reinstall torch==2.13.0
