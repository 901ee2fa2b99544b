"""``python -m controlplane.simulate serve|load``: the simulator's command line.

Every ``serve`` flag can also be set as ``CONTROLPLANE_SIM_<FLAG>`` (``--ttft-median`` is
``CONTROLPLANE_SIM_TTFT_MEDIAN``); a flag wins over the environment.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import fields

from controlplane.simulate.server import ServerConfig

_TYPES: dict[str, type] = {
    "model": str,
    "version": str,
    "output_tokens": int,
    "seed": int,
    "max_loras": int,
    "adapter_profiles": str,
    "knowledge": str,
    "answer_knobs": str,
    "adapter_answers": str,
}
_HELP = {
    "model": "served model name (requests naming another model get 404)",
    "version": "the version this server plays (x-simulator-version header, /health)",
    "ttft_median": "median time to first token, seconds",
    "ttft_spread": "sigma of log(TTFT); 0 gives a constant TTFT",
    "itl_median": "median inter-token latency, seconds",
    "itl_spread": "sigma of log(inter-token latency)",
    "output_tokens": "tokens per answer (fewer when the request's max_tokens is lower)",
    "error_rate": "share of requests that answer 500, 0-1",
    "latency_offset": "seconds added to every TTFT: a regressed canary",
    "time_scale": "share of the drawn latency really slept (0.01: 100x faster); "
    "the metrics record the drawn latency",
    "seed": "random seed, for reproducible latencies",
    "max_loras": "LoRA adapters that may be loaded at runtime at once; 0 turns LoRA off",
    "lora_load_seconds": "seconds an adapter takes to load",
    "adapter_profiles": 'JSON {"<adapter>": {"ttft_median": 0.4, ...}}: an adapter\'s own '
    "latency and error knobs",
    "knowledge": "comma-separated eval-suite JSONL files whose prompts are answered from "
    "their items (empty: filler words for every prompt)",
    "answer_knobs": 'JSON {"forget": 0.2, "comply": 0.1, "noise": 0.02, "seed": 3, ...}: '
    "how well this version answers the knowledge table's prompts",
    "adapter_answers": 'JSON {"<adapter>": {"forget": 0.3, ...}}: an adapter\'s own answer '
    "knobs, over the server's",
}


def _serve_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="run a simulated vLLM server")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    serve.add_argument("--port", type=int, default=8000)
    for spec in fields(ServerConfig):
        kind = _TYPES.get(spec.name, float)
        serve.add_argument(
            f"--{spec.name.replace('_', '-')}",
            dest=spec.name,
            type=kind,
            default=None,
            help=f"{_HELP[spec.name]} (default {spec.default})",
        )


def _load_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    load = commands.add_parser(
        "load", help="send bounded load to a stable and a canary server (loopback only)"
    )
    load.add_argument("--stable", required=True, help="stable server URL")
    load.add_argument("--canary", help="canary server URL")
    weight = load.add_mutually_exclusive_group()
    weight.add_argument("--weight", type=float, help="canary share in percent, 0-100")
    weight.add_argument("--weight-file", help="a file holding the weight, re-read as it runs")
    weight.add_argument("--weight-url", help="a loopback URL answering the weight (or JSON)")
    load.add_argument("--requests", type=int, default=1000, help="stop after this many")
    load.add_argument("--duration", type=float, default=60.0, help="stop after these seconds")
    load.add_argument("--concurrency", type=int, default=8)
    load.add_argument("--model", help="model name to send (default: none)")
    load.add_argument("--max-tokens", type=int)
    load.add_argument("--chat", action="store_true", help="use /v1/chat/completions")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m controlplane.simulate")
    commands = parser.add_subparsers(dest="command", required=True)
    _serve_parser(commands)
    _load_parser(commands)
    return parser


def serve_config(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> ServerConfig:
    """The server's settings: the environment, overridden by the flags that were given."""
    overrides = {spec.name: getattr(args, spec.name) for spec in fields(ServerConfig)}
    return ServerConfig.from_env(environ, **overrides)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    if args.command == "serve":
        import uvicorn

        from controlplane.simulate.server import create_app

        try:
            config = serve_config(args)
        except ValueError as error:
            parser.error(str(error))
        app = create_app(config)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
        return 0

    from controlplane.simulate import load

    weight: load.WeightSource = args.weight_file or args.weight_url or (args.weight or 0.0)
    try:
        report = load.run(
            args.stable,
            args.canary,
            weight,
            requests=args.requests,
            seconds=args.duration,
            concurrency=args.concurrency,
            model=args.model,
            max_tokens=args.max_tokens,
            chat=args.chat,
        )
    except ValueError as error:
        parser.error(str(error))
    print(json.dumps(report.as_dict(), indent=2))  # noqa: T201 - the command's output
    return 0


if __name__ == "__main__":
    sys.exit(main())
