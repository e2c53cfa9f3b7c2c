#!/usr/bin/env bash
# The quick start: install media_search, index sample_media/ into Milvus Lite, run three queries.
#   bash scripts/quickstart.sh
# QUICKSTART_NO_INSTALL=1 skips the pip step; MEDIA_SEARCH_MILVUS_URI picks another store.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${QUICKSTART_NO_INSTALL:-}" ]; then
  python3 -m pip install -q torch==2.14.1 torchvision==0.29.1   # or any torch >= 2.2 build you prefer
  python3 -m pip install -q -e .
fi
export MEDIA_SEARCH_MILVUS_URI="${MEDIA_SEARCH_MILVUS_URI:-$PWD/quickstart.db}"
set +e
media-search index sample_media
status=$?
set -e
[ "$status" -le 2 ] || exit "$status"
echo "--- an image: a crop of astronaut.jpg"
media-search query sample_media/variants/astronaut_crop.jpg -k 5
echo "--- a video: 4 s cut from the middle of space_tour.mp4"
media-search query sample_media/variants/space_tour_clip.mp4 -k 3
echo "--- a sound: 3 s of chords.flac"
media-search query sample_media/variants/chords_snippet.wav -k 3
