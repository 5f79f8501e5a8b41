# kimi-asr image for the API and the GPU worker (docker-compose.yml builds it as kimi-asr:latest).
# CUDA comes with the torch wheels that vLLM pulls; the host needs the NVIDIA container toolkit.
FROM python:3.11-slim

RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libsndfile1 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Dependencies first, so code edits do not reinstall vLLM.
COPY pyproject.toml README.md ./
RUN mkdir -p kimi_model api worker service \
 && touch kimi_model/__init__.py api/__init__.py worker/__init__.py service/__init__.py \
 && pip install --no-cache-dir ".[gpu]" \
 && pip uninstall -y kimi-asr
COPY kimi_model ./kimi_model
COPY api ./api
COPY worker ./worker
COPY service ./service
# Installed (not editable) so the vllm.general_plugins entry point is registered.
RUN pip install --no-cache-dir --no-deps .

RUN useradd --create-home --uid 10001 kimi && mkdir -p /data && chown kimi /data
USER kimi
ENV KIMI_DATA_DIR=/data PYTHONUNBUFFERED=1
EXPOSE 8000
CMD ["python", "-m", "worker"]
