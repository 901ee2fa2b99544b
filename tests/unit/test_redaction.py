"""The redaction rule: which names and values are credentials, and what is shown instead."""

from __future__ import annotations

import pytest

from controlplane.redaction import (
    REDACTED,
    credential_like,
    keep_redacted_args,
    keep_redacted_env,
    mask_text,
    placeholder_problem,
    redact_args,
    redact_env,
    redact_json,
    redact_text,
    sensitive_name,
)

HF = "hf_" + "aB3" * 12  # the shape of a Hugging Face token (made up)
OPENAI = "sk-proj-" + "Zx9" * 10


@pytest.mark.parametrize(
    "name",
    [
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "GITHUB_TOKEN",
        "AWS_SESSION_TOKEN",
        "OPENAI_API_KEY",
        "WANDB_API_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "DB_PASSWORD",
        "PGPASSWORD",
        "REDIS_PASSWD",
        "SSH_PRIVATE_KEY",
        "SIGNING_KEY",
        "BASIC_AUTH",
        "MY_CREDENTIALS",
        "client-secret",
        "hfToken",
        "apiKey",
        "api-key",  # a flag's name
        "sig",  # a URL's signature parameter
        "X-Amz-Signature",
    ],
)
def test_credential_names(name: str) -> None:
    assert sensitive_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "HF_HOME",
        "HF_HUB_OFFLINE",
        "HF_HUB_ENABLE_HF_TRANSFER",
        "TOKENIZERS_PARALLELISM",
        "MAX_TOKENS",
        "VLLM_MAX_NUM_BATCHED_TOKENS",
        "TOKEN_FILE",  # a path to a mounted file: no credential itself
        "VLLM_LOGGING_LEVEL",
        "NCCL_DEBUG",
        "CUDA_VISIBLE_DEVICES",
        "prompt_tokens",
        "token_count",
        "keys_per_shard",
    ],
)
def test_ordinary_names(name: str) -> None:
    assert not sensitive_name(name)


@pytest.mark.parametrize(
    "value",
    [
        HF,
        OPENAI,
        "sk-ant-api03-" + "q" * 30,
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_" + "a1" * 18,
        "github_pat_" + "A1_" * 12,
        "glpat-" + "x" * 20,
        "xoxb-1234567890-abcdefghij",
        "AIza" + "S" * 35,
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn...\n",
        "Bearer abcdefghijklmnopqrstuvwxyz",
        f"token={HF}",  # anywhere in the value
    ],
)
def test_credential_values_are_redacted_whole(value: str) -> None:
    assert credential_like(value)
    assert redact_text(value) == REDACTED


@pytest.mark.parametrize(
    "value",
    [
        "/cache",
        "s3://models/chat/v1",
        "hf://meta-llama/Llama-3.1-8B-Instruct",
        "meta-llama/Llama-3.1-8B-Instruct",
        "task-1234567890123456789012345",  # "sk-" inside a word
        "disk-cache-" + "a" * 30,
        "0123456789abcdef" * 4,  # a sha256
        "https://models.example.com/chat/v2?rev=3",
        "",
    ],
)
def test_ordinary_values_are_shown(value: str) -> None:
    assert not credential_like(value)
    assert redact_text(value) == value


def test_only_the_secret_part_of_a_url_goes() -> None:
    assert redact_text("postgres://app:s3cr3t@db:5432/app") == (
        f"postgres://app:{REDACTED}@db:5432/app"
    )
    assert redact_text("redis://:pw@cache:6379/0") == f"redis://:{REDACTED}@cache:6379/0"
    assert redact_text("https://acct.blob.core.windows.net/m?sv=2024&sig=abc%2Bdef&se=x") == (
        f"https://acct.blob.core.windows.net/m?sv=2024&sig={REDACTED}&se=x"
    )
    assert (
        redact_text("https://host/x?access_token=abc") == f"https://host/x?access_token={REDACTED}"
    )


def test_env_values_by_name_and_by_look_and_references_as_they_are() -> None:
    reference = {"secret": "hf-token", "key": "token", "optional": False}
    env = {
        "HF_TOKEN": "anything at all",
        "TOKENIZERS_PARALLELISM": "false",
        "UPSTREAM": OPENAI,
        "DATABASE_URL": "postgres://app:pw@db/app",
        "HF_TOKEN_REF": reference,
        "EMPTY_PASSWORD": "",
    }
    assert redact_env(env) == {
        "HF_TOKEN": REDACTED,
        "TOKENIZERS_PARALLELISM": "false",
        "UPSTREAM": REDACTED,
        "DATABASE_URL": f"postgres://app:{REDACTED}@db/app",
        "HF_TOKEN_REF": reference,
        "EMPTY_PASSWORD": "",  # that it is empty is no secret
    }


def test_args_lose_the_values_of_credential_flags() -> None:
    args = [
        "--model",
        "{artifact_uri}",
        "--api-key",
        "plain-but-named",
        "--hf-token=also-named",
        "--max-num-batched-tokens",
        "8192",
        "HF_TOKEN=named-too",
        "--served-model-name",
        OPENAI,
        "--api-key",  # a flag without a value, then another flag
        "--port",
        "8000",
    ]
    assert redact_args(args) == [
        "--model",
        "{artifact_uri}",
        "--api-key",
        REDACTED,
        f"--hf-token={REDACTED}",
        "--max-num-batched-tokens",
        "8192",
        f"HF_TOKEN={REDACTED}",
        "--served-model-name",
        REDACTED,
        "--api-key",
        "--port",
        "8000",
    ]


def test_json_documents_by_key_and_look() -> None:
    details = {
        "name": "chat",
        "env": {"HF_TOKEN": HF, "HF_HOME": "/cache"},
        "args": ["--api-key", "x"],
        "changes": {"env": {"OPENAI_API_KEY": "x"}, "replicas": 2},
        "endpoint_picker": {"args": ["--token", "y"]},
        "wandb": {"api_key": "z", "run": "run-42", "tokens": 12},
        "notes": [HF, "fine"],
        "scores": {"mmlu": 0.61},
    }
    assert redact_json(details) == {
        "name": "chat",
        "env": {"HF_TOKEN": REDACTED, "HF_HOME": "/cache"},
        "args": ["--api-key", REDACTED],
        "changes": {"env": {"OPENAI_API_KEY": REDACTED}, "replicas": 2},
        "endpoint_picker": {"args": ["--token", REDACTED]},
        "wandb": {"api_key": REDACTED, "run": "run-42", "tokens": 12},
        "notes": [REDACTED, "fine"],
        "scores": {"mmlu": 0.61},
    }
    assert redact_json(redact_json(details)) == redact_json(details)  # idempotent


def test_sending_back_what_was_shown_keeps_the_stored_value() -> None:
    stored = {"HF_TOKEN": "real", "URL": "postgres://a:pw@db/x", "LEVEL": "INFO"}
    shown = redact_env(stored)
    # a GET, one change, a PATCH: the credentials are kept, the change applies
    given = {**shown, "LEVEL": "DEBUG"}
    assert keep_redacted_env(given, stored) == {**stored, "LEVEL": "DEBUG"}
    # a new value replaces; a placeholder where nothing was redacted is left for refusal
    assert keep_redacted_env({"HF_TOKEN": "new"}, stored) == {"HF_TOKEN": "new"}
    assert keep_redacted_env({"LEVEL": REDACTED}, stored) == {"LEVEL": REDACTED}
    assert keep_redacted_env({"OTHER": REDACTED}, stored) == {"OTHER": REDACTED}

    args = ["--api-key", "real", "--port", "8000"]
    assert keep_redacted_args([*redact_args(args), "--x"], args) == [*args, "--x"]
    assert keep_redacted_args([REDACTED, "real"], args) == [REDACTED, "real"]


def test_the_placeholder_is_named_when_refused() -> None:
    problem = placeholder_problem(f"x{REDACTED}", "env HF_TOKEN")
    assert problem is not None
    assert "env HF_TOKEN" in problem
    assert '{"secret": NAME, "key": KEY}' in problem
    assert placeholder_problem("fine", "env A") is None


def test_a_message_keeps_its_words_around_what_it_echoed() -> None:
    message = f"Loading lora chat-v2 failed: no adapter at https://u:pw1@h/x (token {HF})"
    assert mask_text(message) == (
        f"Loading lora chat-v2 failed: no adapter at https://u:{REDACTED}@h/x (token {REDACTED})"
    )
    assert mask_text("nothing to hide") == "nothing to hide"
