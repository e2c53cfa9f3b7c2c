#!/usr/bin/env bash
# Command one: from a fresh clone to three query results.
#   bash scripts/quickstart.sh
# Makes (or reuses) .venv with `python3 -m venv`, installs torch there only when it has none
# (CPU wheels without an NVIDIA GPU; TORCH_INDEX_URL overrides), then `pip install -e .`,
# indexes sample_media/ into ./quickstart.db (Milvus Lite) and runs three queries.
# PYTHON / VENV choose the interpreter and the venv (scripts/venv.sh); QUICKSTART_NO_INSTALL=1
# skips the venv and uses the media-search on PATH; MEDIA_SEARCH_MILVUS_URI picks another store.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh

RANDOM_DEMO="MEDIA_SEARCH_IMAGE_WEIGHTS=random MEDIA_SEARCH_AUDIO_WEIGHTS=random bash scripts/quickstart.sh"

if [ -z "${QUICKSTART_NO_INSTALL:-}" ]; then
  venv_make
  venv_torch
  venv_install
  PATH="$PWD/$VENV/bin:$PATH"
  py="$PWD/$VENV/bin/python"
else
  py=$(command -v python3)
fi

if ! command -v ffmpeg >/dev/null 2>&1; then
  say "ffmpeg not found: video soundtracks and m4a/aac files will not be indexed (the pictures of videos and other sound files will); install it with 'sudo apt install ffmpeg' (macOS: brew install ffmpeg)"
fi

# The models first, so a download that cannot happen stops here with the product's message.
if ! "$py" - <<'PY'
import sys
from media_search import Library, MediaSearchError
try:
    lib = Library()
    for kind in ("image", "audio"):
        lib.model(kind)
except MediaSearchError as e:
    print(f"media-search: {e}", file=sys.stderr)
    sys.exit(3)
PY
then
  say "stopped: the model weights are not available. To run the demo offline with untrained (random) weights instead:"
  printf '  %s\n' "$RANDOM_DEMO" >&2
  exit 1
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
