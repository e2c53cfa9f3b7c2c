# media_search: index a folder into Milvus and serve the search page.
#   docker build -t media-search .                                   (CPU torch)
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 -t media-search .
FROM python:3.11-slim

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# ffmpeg decodes video soundtracks and compressed audio.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*

# torch first, from the chosen wheel index, so that installing the project does not pull another build.
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"

WORKDIR /app
COPY . /app
RUN pip install /app

# Model checkpoints (ResNet50 ~100 MB, Cnn14 ~330 MB) are downloaded on first use into this folder:
# mount a volume here to keep them, or put the .pth files there yourself for offline use.
VOLUME ["/root/.cache/torch"]

ENV MEDIA_SEARCH_MILVUS_URI=http://milvus:19530
EXPOSE 7860
ENTRYPOINT ["media-search"]
CMD ["serve", "--host", "0.0.0.0", "--port", "7860"]
