#!/usr/bin/env python3
"""Optional, one-off: show that the committed pytorch_model.bin files are exactly what
transformers 4.x `save_pretrained(safe_serialization=False)` writes (transformers 5 no
longer writes .bin, so make_fixtures.py emulates it).

TEST REFERENCE ONLY. Usage (transformers 4.57 beside the pinned reference venv):

    /opt/reference-venv/bin/pip install --target /tmp/t4 --no-deps \
        "transformers==4.57.6" "huggingface_hub==0.36.2" "tokenizers==0.22.2" \
        requests urllib3 charset-normalizer certifi
    PYTHONPATH=/tmp/t4 /opt/reference-venv/bin/python scripts/conformance/crosscheck_transformers4.py

For each layout it loads model.safetensors with transformers 4.x, saves it with
safe_serialization=False, and compares the two zips entry by entry (same entry names,
same data.pkl bytes, same storage bytes).
"""

import sys
import tempfile
import zipfile
from pathlib import Path

import transformers
from transformers import BertForPreTraining, BertModel, HubertModel, Wav2Vec2Model, WavLMModel

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "fixtures" / "conformance"
LAYOUTS = {
    "hubert-tiny": (HubertModel, {}),
    "bert-tiny": (BertModel, {"add_pooling_layer": False}),
    "distilhubert-tiny": (HubertModel, {}),
    "wavlm-tiny": (WavLMModel, {}),
    "hubert-stable-ln-tiny": (HubertModel, {}),
    "wav2vec2-tiny": (Wav2Vec2Model, {}),
    "bert-prefixed-tiny": (BertForPreTraining, {}),
}


def entries(path):
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def main():
    assert transformers.__version__.startswith("4."), f"needs transformers 4.x, got {transformers.__version__}"
    ok = True
    for name, (cls, kw) in LAYOUTS.items():
        d = CONF / name
        with tempfile.TemporaryDirectory() as tmp:
            model = cls.from_pretrained(d, use_safetensors=True, **kw)
            model.save_pretrained(tmp, safe_serialization=False)
            theirs, ours = entries(Path(tmp) / "pytorch_model.bin"), entries(d / "pytorch_model.bin")
            whole = (Path(tmp) / "pytorch_model.bin").read_bytes() == (d / "pytorch_model.bin").read_bytes()
        same = theirs.keys() == ours.keys() and all(theirs[k] == ours[k] for k in theirs)
        diff = sorted(k for k in theirs.keys() | ours.keys() if theirs.get(k) != ours.get(k))
        print(f"{name:24s} {('identical, whole file byte for byte' if whole else 'identical entries') if same else 'DIFFERENT: ' + ', '.join(diff[:6])}")
        ok &= same
    print(f"transformers {transformers.__version__}: {'all identical' if ok else 'differences found'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
