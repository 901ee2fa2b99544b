"""An OpenAI-compatible fake inference server that exposes vLLM's metrics: the stand-in
for a GPU pod in the demo and in the tests of the canary analysis.

Each request draws its latencies up front from the configured distributions (time to
first token: log-normal around a median, plus ``latency_offset`` to make a regressed
canary; inter-token gaps: log-normal; ``error_rate`` of requests answer 500). The metrics
record the latencies *as drawn*; the server only sleeps ``time_scale`` times as long, so a
test gets realistic histograms without waiting real seconds. It never calls out anywhere.

With ``max_loras`` above zero it serves LoRA adapters as vLLM does with
``--enable-lora`` and ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``: ``/v1/load_lora_adapter``
and ``/v1/unload_lora_adapter`` with vLLM's answers and error shapes (400 for an adapter
already loaded, or for one more than ``max_loras``; 404 for unloading an unknown one),
``/v1/models`` listing the loaded adapters with their base as ``parent``, requests naming an
adapter served with that adapter's own latency and error knobs (``adapter_profiles``), and
``vllm:lora_requests_info``. ``/sim/restart`` is a container restart in place: the adapters
loaded at runtime and the counters are gone, as they are from a real pod's memory.

With ``knowledge`` (eval-suite JSONL files) it answers the suites' prompts as a version of
a fine-tuned model would, for testing and benchmarking the live quality gate: the item's
reference, or a plausible wrong answer for the items the version forgets, a refusal or a
marked placeholder for the safety probes it complies with (``answer_knobs``, per adapter
``adapter_answers``, changed while serving by ``/sim/answers``; see ``answers``). The answer
sets the output token count (1.3 a word, cut at ``max_tokens``) and so the drawn latency;
unknown prompts get the filler words, and without ``knowledge`` nothing changes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import math
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import Match

from controlplane.simulate.answers import (
    WORDS,
    Answer,
    AnswerKnobs,
    Knowledge,
    answer,
    count_tokens,
    last_user,
    split_tokens,
)
from controlplane.simulate.metrics import CONTENT_TYPE, VllmMetrics

ENV_PREFIX = "CONTROLPLANE_SIM_"
# vLLM's instrumentator leaves these out of http_requests_total
UNCOUNTED = frozenset({"/metrics", "/health", "/ping", "/version", "/load"})


@dataclass(frozen=True)
class ServerConfig:
    """The knobs of one simulated inference server (seconds unless said otherwise)."""

    model: str = "chat"
    version: str = "v1"
    ttft_median: float = 0.2
    ttft_spread: float = 0.25  # sigma of log(TTFT): 0.25 puts p95 at about 1.5 x median
    itl_median: float = 0.02
    itl_spread: float = 0.2
    output_tokens: int = 16
    error_rate: float = 0.0  # share of requests that answer 500
    latency_offset: float = 0.0  # added to every TTFT (and so to end-to-end latency)
    time_scale: float = 1.0  # how long to really sleep, as a share of the drawn latency
    seed: int | None = None
    max_loras: int = 0  # adapters that may be loaded at once; 0: LoRA serving is off
    lora_load_seconds: float = 0.0  # how long loading an adapter takes (really slept)
    # JSON {"<adapter>": {"ttft_median": 0.4, "error_rate": 0.1, ...}}: an adapter's own
    # knobs, over the server's, for the requests that name it
    adapter_profiles: str = ""
    # comma-separated eval-suite JSONL files whose prompts are answered from the items
    # (empty: every prompt gets filler words)
    knowledge: str = ""
    # JSON {"forget": 0.2, "seed": 3, ...}: how well this version answers (AnswerKnobs)
    answer_knobs: str = ""
    # JSON {"<adapter>": {"forget": 0.3, ...}}: an adapter's answer knobs, over the server's
    adapter_answers: str = ""

    def __post_init__(self) -> None:
        problems = []
        for name in ("ttft_median", "itl_median"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be positive")
        for name in ("ttft_spread", "itl_spread", "latency_offset", "time_scale"):
            if not getattr(self, name) >= 0:
                problems.append(f"{name} must not be negative")
        if not 0 <= self.error_rate <= 1:
            problems.append("error_rate must be between 0 and 1")
        if self.output_tokens < 1:
            problems.append("output_tokens must be at least 1")
        if self.max_loras < 0:
            problems.append("max_loras must not be negative")
        if self.lora_load_seconds < 0:
            problems.append("lora_load_seconds must not be negative")
        try:
            profiles_of(self)
        except ValueError as error:
            problems.append(str(error))
        problems += self._answer_problems()
        if problems:
            raise ValueError("invalid simulator settings: " + "; ".join(problems))

    def _answer_problems(self) -> list[str]:
        problems = []
        try:
            AnswerKnobs.from_json(self.answer_knobs)
        except ValueError as error:
            problems.append(f"answer_knobs: {error}")
        for check in (adapter_answers_of, knowledge_of):
            try:
                check(self)
            except ValueError as error:
                problems.append(str(error))
        return problems

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ServerConfig:
        """Settings from ``CONTROLPLANE_SIM_<FIELD>`` variables, then ``overrides``
        (the command line's flags: ``None`` means not given)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in fields(cls):
            raw = environ.get(ENV_PREFIX + spec.name.upper())
            if raw is not None and raw != "":
                values[spec.name] = _parse(spec.name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_args(self) -> list[str]:
        """The ``serve`` flags that reproduce these settings."""
        args = []
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value is not None:
                args += [f"--{spec.name.replace('_', '-')}", str(value)]
        return args


PROFILE_KNOBS = frozenset(
    {"ttft_median", "ttft_spread", "itl_median", "itl_spread", "error_rate", "latency_offset"}
)
TEXT_SETTINGS = frozenset(
    {"model", "version", "adapter_profiles", "knowledge", "answer_knobs", "adapter_answers"}
)
WHOLE_SETTINGS = frozenset({"output_tokens", "seed", "max_loras"})


def profiles_of(config: ServerConfig) -> dict[str, dict[str, float]]:
    """The adapters' own knobs, checked: ValueError says what is wrong."""
    if not config.adapter_profiles:
        return {}
    try:
        raw = json.loads(config.adapter_profiles)
    except ValueError as error:
        raise ValueError(f"adapter_profiles is not JSON: {error}") from error
    if not isinstance(raw, dict):
        raise ValueError("adapter_profiles must be a JSON object of adapter name to knobs")
    profiles: dict[str, dict[str, float]] = {}
    for name, knobs in raw.items():
        if not isinstance(knobs, dict) or set(knobs) - PROFILE_KNOBS:
            raise ValueError(
                f"adapter_profiles[{name!r}] may only set {', '.join(sorted(PROFILE_KNOBS))}"
            )
        profiles[str(name)] = {k: float(v) for k, v in knobs.items()}
    return profiles


def adapter_answers_of(config: ServerConfig) -> dict[str, dict[str, Any]]:
    """The adapters' own answer knobs (the ones they set), checked: ValueError says what
    is wrong."""
    if not config.adapter_answers.strip():
        return {}
    try:
        raw = json.loads(config.adapter_answers)
    except ValueError as error:
        raise ValueError(f"adapter_answers is not JSON: {error}") from error
    if not isinstance(raw, dict):
        raise ValueError("adapter_answers must be a JSON object of adapter name to answer knobs")
    overlays: dict[str, dict[str, Any]] = {}
    for name, knobs in raw.items():
        if not isinstance(knobs, dict):
            raise ValueError(f"adapter_answers[{name!r}] must be a JSON object of answer knobs")
        try:
            overlays[str(name)] = AnswerKnobs.changes(knobs)
        except ValueError as error:
            raise ValueError(f"adapter_answers[{name!r}]: {error}") from error
    return overlays


def knowledge_of(config: ServerConfig) -> Knowledge | None:
    """The knowledge table of ``config.knowledge`` (None without one), read once per
    version of its files: ValueError says which file or line is wrong."""
    paths = [p.strip() for p in config.knowledge.split(",") if p.strip()]
    if not paths:
        return None
    stamps = []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError as error:
            raise ValueError(f"knowledge file {path!r} cannot be read: {error.strerror}") from None
        stamps.append((os.path.abspath(path), stat.st_mtime_ns, stat.st_size))
    return _read_knowledge(tuple(stamps))


@functools.lru_cache(maxsize=16)
def _read_knowledge(stamps: tuple[tuple[str, int, int], ...]) -> Knowledge:
    return Knowledge.from_jsonl([path for path, _, _ in stamps])


def _parse(name: str, raw: str) -> Any:
    if name in TEXT_SETTINGS:
        return raw
    try:
        return int(raw) if name in WHOLE_SETTINGS else float(raw)
    except ValueError as error:
        raise ValueError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a number") from error


@dataclass(frozen=True)
class Plan:
    """What one request will do, drawn when it arrives."""

    error: bool
    ttft: float
    gaps: tuple[float, ...]  # one per token after the first
    finished_reason: str

    @property
    def output_tokens(self) -> int:
        return len(self.gaps) + 1

    @property
    def latency(self) -> float:
        return self.ttft + sum(self.gaps)


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter loaded at runtime."""

    name: str
    path: str
    loaded_at: int


class Simulator:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.metrics = VllmMetrics(config.model, max_loras=config.max_loras)
        self.rng = random.Random(config.seed)  # noqa: S311 - a simulation, not security
        self.started = int(time.time())
        self.adapters: dict[str, Adapter] = {}
        self.profiles = profiles_of(config)
        self.knowledge = knowledge_of(config)
        self.answers = AnswerKnobs.from_json(config.answer_knobs)
        self.adapter_answers = adapter_answers_of(config)
        # answers draw from their own stream: the latencies of a seed stay as they were
        self.answer_rng = random.Random(  # noqa: S311 - a simulation, not security
            None if config.seed is None else f"answers:{config.seed}"
        )
        self.restarts = 0
        self.in_flight: dict[str, int] = {}  # by adapter: vllm:lora_requests_info's running

    def begin(self, model: str | None) -> None:
        self.metrics.add_running(1)
        if model in self.adapters:
            self.in_flight[model] = self.in_flight.get(model, 0) + 1
            self.lora_info()

    def end(self, model: str | None) -> None:
        self.metrics.add_running(-1)
        if model is not None and model in self.in_flight:
            self.in_flight[model] -= 1
            if self.in_flight[model] <= 0:
                del self.in_flight[model]
            self.lora_info()

    def knobs(self, model: str | None) -> ServerConfig:
        """The settings a request for ``model`` (the base or an adapter) is served with."""
        profile = self.profiles.get(model or "")
        return dataclasses.replace(self.config, **profile) if profile else self.config  # type: ignore[arg-type]

    def plan(
        self, max_tokens: int | None, model: str | None = None, wanted: int | None = None
    ) -> Plan:
        """``wanted``: the answer's tokens (default ``output_tokens``), cut at ``max_tokens``."""
        c, rng = self.knobs(model), self.rng
        wanted = c.output_tokens if wanted is None else wanted
        error = rng.random() < c.error_rate
        tokens = wanted if max_tokens is None else max(1, min(max_tokens, wanted))
        reason = "length" if max_tokens is not None and max_tokens < wanted else "stop"
        ttft = rng.lognormvariate(math.log(c.ttft_median), c.ttft_spread) + c.latency_offset
        gaps = tuple(
            rng.lognormvariate(math.log(c.itl_median), c.itl_spread) for _ in range(tokens - 1)
        )
        return Plan(error, ttft, gaps, reason)

    def answer_knobs(self, model: str | None) -> AnswerKnobs:
        """The answer knobs a request for ``model`` (the base or an adapter) is served with."""
        overlay = self.adapter_answers.get(model or "")
        return dataclasses.replace(self.answers, **overlay) if overlay else self.answers

    def answer(self, question: str, model: str | None) -> Answer | None:
        """The table's answer to ``question``; None when it is to get filler words."""
        if self.knowledge is None:
            return None
        said = answer(
            self.knowledge,
            self.answer_knobs(model),
            question,
            self.answer_rng,
            filler_words=self.knobs(model).output_tokens,
        )
        return said if said.correct is not None else None

    def draft(
        self, question: str, max_tokens: int | None, model: str | None
    ) -> tuple[Plan, list[str], dict[str, str]]:
        """What a request will answer: its plan, its text as one piece per token, and
        the headers that say what was drawn."""
        said = self.answer(question, model)
        if said is None:
            plan = self.plan(max_tokens, model)
            pieces = _filler_pieces(plan.output_tokens)
        else:
            whole = split_tokens(said.text)
            plan = self.plan(max_tokens, model, wanted=len(whole))
            pieces = whole[: plan.output_tokens]
        # the latencies as drawn (the server sleeps time_scale times as long): what a
        # simulated gateway in front records, as the metrics here do
        drawn = {
            "x-simulated-ttft": f"{plan.ttft:.6f}",
            "x-simulated-latency": f"{plan.latency:.6f}",
            "x-simulated-tokens": str(plan.output_tokens),
        }
        if said is not None and said.item_id is not None and _header_safe(said.item_id):
            # what the answer was meant to be, for a benchmark to check the gate against
            drawn["x-simulated-item"] = said.item_id
            drawn["x-simulated-correct"] = "true" if said.correct else "false"
        return plan, pieces, drawn

    def prompt_tokens(self, prompt: str) -> int:
        """A word a token, or with a knowledge table 1.3 a word (as its answers count)."""
        return _prompt_tokens(prompt) if self.knowledge is None else count_tokens(prompt)

    async def pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds * self.config.time_scale)

    def record(self, plan: Plan, prompt_tokens: int) -> None:
        self.metrics.record_request(
            ttft=plan.ttft,
            gaps=plan.gaps,
            prompt_tokens=prompt_tokens,
            output_tokens=plan.output_tokens,
            finished_reason=plan.finished_reason,
        )

    def serves(self, model: str | None) -> bool:
        return model is None or model == self.config.model or model in self.adapters

    def restart(self) -> None:
        """A container restart in place: what was loaded at runtime, and the counters, are
        gone; the settings (the pod spec) stay."""
        self.adapters.clear()
        self.in_flight.clear()
        self.metrics = VllmMetrics(self.config.model, max_loras=self.config.max_loras)
        self.started = int(time.time())
        self.restarts += 1

    def lora_info(self) -> None:
        running = sorted(name for name in self.in_flight if name in self.adapters)
        self.metrics.set_lora_info(running=running, waiting=[])


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    stream: bool = False


class LoadLoraRequest(BaseModel):
    """vLLM's ``LoadLoRAAdapterRequest``."""

    lora_name: str = Field(min_length=1)
    lora_path: str = Field(min_length=1)
    load_inplace: bool = False


class UnloadLoraRequest(BaseModel):
    """vLLM's ``UnloadLoRAAdapterRequest``."""

    lora_name: str = Field(min_length=1)
    lora_int_id: int | None = None


class CompletionRequest(_Request):
    prompt: str | list[str] = ""


class ChatRequest(_Request):
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)


def _prompt_tokens(text: str) -> int:
    return max(1, len(text.split()))


def _text(tokens: int) -> list[str]:
    return [WORDS[i % len(WORDS)] for i in range(tokens)]


def _filler_pieces(tokens: int) -> list[str]:
    return [word if i == 0 else f" {word}" for i, word in enumerate(_text(tokens))]


def _error(status: int, message: str, kind: str) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
    return JSONResponse(body, status_code=status)


class _HttpMetrics:
    """``http_requests_total{handler,method,status}`` like prometheus-fastapi-instrumentator:
    the route's path template, status grouped as ``2xx``/``4xx``/``5xx``."""

    def __init__(self, app: Callable[..., Awaitable[None]], simulator: Simulator) -> None:
        self.app, self.simulator = app, simulator

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_wrapper(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-simulator-version", self.simulator.config.version.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            handler = self._handler(scope)
            if handler not in UNCOUNTED:
                self.simulator.metrics.http_requests.inc(
                    handler, scope["method"], f"{status // 100}xx"
                )

    def _handler(self, scope: MutableMapping[str, Any]) -> str:
        router = scope.get("app")
        for route in getattr(getattr(router, "router", None), "routes", []):
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return str(route.path)
        return "none"


def create_app(config: ServerConfig) -> FastAPI:
    simulator = Simulator(config)
    app = FastAPI(title=f"simulated vLLM: {config.model} {config.version}", docs_url=None)
    app.state.simulator = simulator

    async def generate(
        body: _Request,
        prompt: str,
        question: str,
        max_tokens: int | None,
        kind: Literal["text_completion", "chat.completion"],
    ) -> Response:
        """``prompt``: all the request's text (its tokens); ``question``: what is looked up
        in the knowledge table (a chat's last user message)."""
        if not simulator.serves(body.model):
            return _error(404, f"The model `{body.model}` does not exist.", "NotFoundError")
        plan, pieces, drawn = simulator.draft(question, max_tokens, body.model)
        if plan.error:
            await simulator.pause(plan.ttft)
            failed = _error(500, "simulated engine failure", "InternalServerError")
            failed.headers.update(drawn)
            return failed
        prompt_tokens = simulator.prompt_tokens(prompt)
        if body.stream:
            return StreamingResponse(
                _stream(simulator, plan, pieces, prompt_tokens, kind, body.model or config.model),
                media_type="text/event-stream",
                headers=drawn,
            )
        simulator.begin(body.model)
        try:
            await simulator.pause(plan.latency)
        finally:
            simulator.end(body.model)
        simulator.record(plan, prompt_tokens)
        return JSONResponse(
            _completion(body.model or config.model, plan, pieces, prompt_tokens, kind),
            headers=drawn,
        )

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest) -> Response:
        prompt = body.prompt if isinstance(body.prompt, str) else " ".join(body.prompt)
        return await generate(body, prompt, prompt, body.max_tokens, "text_completion")

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest) -> Response:
        prompt = " ".join(str(m.get("content", "")) for m in body.messages)
        max_tokens = body.max_completion_tokens or body.max_tokens
        return await generate(body, prompt, last_user(body.messages), max_tokens, "chat.completion")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        base = {
            "id": config.model,
            "object": "model",
            "created": simulator.started,
            "owned_by": "vllm",
            "root": config.model,
            "parent": None,
        }
        adapters = [
            {
                "id": adapter.name,
                "object": "model",
                "created": adapter.loaded_at,
                "owned_by": "vllm",
                "root": adapter.path,
                "parent": config.model,
            }
            for adapter in simulator.adapters.values()
        ]
        return {"object": "list", "data": [base, *adapters]}

    if config.max_loras > 0:
        # vLLM registers these only with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True: without
        # them a load is a 404, which the control plane reports as "runtime updating off"
        _lora_routes(app, simulator)

    _sim_routes(app, simulator)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "model": config.model, "version": config.version}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(simulator.metrics.render(), media_type=CONTENT_TYPE)

    app.add_middleware(_HttpMetrics, simulator=simulator)
    return app


def _sim_routes(app: FastAPI, simulator: Simulator) -> None:
    """The simulator's own endpoints: a restart, and changes of behavior while serving."""

    @app.post("/sim/restart")
    async def restart() -> dict[str, Any]:
        """A container restart in place (same pod, same address): runtime state is lost."""
        simulator.restart()
        return {"restarts": simulator.restarts, "adapters": []}

    @app.post("/sim/faults")
    async def faults(changes: dict[str, float], adapter: str | None = None) -> dict[str, Any]:
        """Change the simulated behavior while serving (tests: a regression that starts
        only after promotion), of the whole server or of one adapter's requests. Only the
        latency and error knobs may change."""
        allowed = {"ttft_median", "ttft_spread", "itl_median", "error_rate", "latency_offset"}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            return JSONResponse(  # type: ignore[return-value]
                {"error": f"cannot change {', '.join(unknown)}; only {sorted(allowed)}"},
                status_code=400,
            )
        try:
            if adapter is not None:
                profile = {**simulator.profiles.get(adapter, {}), **changes}
                knobs = dataclasses.replace(simulator.config, **profile)  # type: ignore[arg-type]
                simulator.profiles[adapter] = profile
            else:
                simulator.config = dataclasses.replace(simulator.config, **changes)  # type: ignore[arg-type]
                knobs = simulator.config
        except (TypeError, ValueError) as error:
            return JSONResponse({"error": str(error)}, status_code=400)  # type: ignore[return-value]
        return {k: getattr(knobs, k) for k in sorted(allowed)}

    @app.post("/sim/answers")
    async def answers(request: Request, adapter: str | None = None) -> Response:
        """Change how the version answers the knowledge table's prompts while serving
        (tests: a version that starts complying later), for the whole server or for one
        adapter's requests: a JSON object of answer knobs, merged over the current ones.
        Answers the knobs now in force."""
        try:
            changes = json.loads(await request.body())
        except ValueError as error:
            return JSONResponse({"error": f"the body is not JSON: {error}"}, status_code=400)
        if not isinstance(changes, dict):
            return JSONResponse(
                {"error": "the body must be a JSON object of answer knobs"}, status_code=400
            )
        try:
            checked = AnswerKnobs.changes(changes)
            if adapter is not None:
                overlay = {**simulator.adapter_answers.get(adapter, {}), **checked}
                knobs = dataclasses.replace(simulator.answers, **overlay)
                simulator.adapter_answers[adapter] = overlay
            else:
                simulator.answers = dataclasses.replace(simulator.answers, **checked)
                knobs = simulator.answers
        except ValueError as error:
            return JSONResponse({"error": f"answer knobs: {error}"}, status_code=400)
        return JSONResponse(knobs.as_dict())


def _lora_routes(app: FastAPI, simulator: Simulator) -> None:
    config = simulator.config

    @app.post("/v1/load_lora_adapter")
    async def load_lora_adapter(body: LoadLoraRequest) -> Response:
        name = body.lora_name
        if name in simulator.adapters and not body.load_inplace:
            return _error(
                400,
                f"The lora adapter '{name}' has already been loaded. If you want to load "
                "the adapter in place, set 'load_inplace' to True.",
                "InvalidUserInput",
            )
        if name not in simulator.adapters and len(simulator.adapters) >= config.max_loras:
            return _error(
                400,
                f"Loading lora {name} failed: the server already holds {config.max_loras} "
                "adapters (max_loras)",
                "BadRequestError",
            )
        if config.lora_load_seconds:
            await asyncio.sleep(config.lora_load_seconds)
        simulator.adapters[name] = Adapter(name, body.lora_path, int(time.time()))
        simulator.lora_info()
        return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")

    @app.post("/v1/unload_lora_adapter")
    async def unload_lora_adapter(body: UnloadLoraRequest) -> Response:
        name = body.lora_name
        if simulator.adapters.pop(name, None) is None:
            return _error(404, f"The lora adapter '{name}' cannot be found.", "NotFoundError")
        simulator.lora_info()
        return PlainTextResponse(f"Success: LoRA adapter '{name}' removed successfully.")


def _header_safe(value: str) -> bool:
    return value.isascii() and value.isprintable() and len(value) <= 200


def _completion(
    model: str, plan: Plan, pieces: list[str], prompt_tokens: int, kind: str
) -> dict[str, Any]:
    text = "".join(pieces)
    if kind == "chat.completion":
        choice: dict[str, Any] = {"message": {"role": "assistant", "content": text}}
    else:
        choice = {"text": text, "logprobs": None}
    return {
        "id": f"{'chatcmpl' if kind == 'chat.completion' else 'cmpl'}-{uuid.uuid4().hex}",
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, **choice, "finish_reason": plan.finished_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": plan.output_tokens,
            "total_tokens": prompt_tokens + plan.output_tokens,
        },
    }


async def _stream(
    simulator: Simulator,
    plan: Plan,
    pieces: list[str],
    prompt_tokens: int,
    kind: str,
    model: str,
) -> AsyncIterator[bytes]:
    """Server-sent events, one chunk per token, paced by the plan; recorded when the
    stream completes (a client that goes away early is not a finished request)."""
    chunk_kind = "chat.completion.chunk" if kind == "chat.completion" else "text_completion"
    ident = f"{'chatcmpl' if kind == 'chat.completion' else 'cmpl'}-{uuid.uuid4().hex}"
    simulator.begin(model)
    try:
        for i, piece in enumerate(pieces):
            await simulator.pause(plan.ttft if i == 0 else plan.gaps[i - 1])
            last = i == len(pieces) - 1
            if kind == "chat.completion":
                choice: dict[str, Any] = {"delta": {"content": piece}}
            else:
                choice = {"text": piece}
            chunk = {
                "id": ident,
                "object": chunk_kind,
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {"index": 0, **choice, "finish_reason": plan.finished_reason if last else None}
                ],
            }
            yield f"data: {json.dumps(chunk)}\n\n".encode()
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": plan.output_tokens,
            "total_tokens": prompt_tokens + plan.output_tokens,
        }
        yield f"data: {json.dumps({'id': ident, 'choices': [], 'usage': usage})}\n\n".encode()
        yield b"data: [DONE]\n\n"
        simulator.record(plan, prompt_tokens)
    finally:
        simulator.end(model)
