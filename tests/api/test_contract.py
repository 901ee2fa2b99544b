"""The OpenAPI document against the real server: schemathesis reads the document, sends
what it allows and what it does not to every operation of a `controlplane serve` process
(SQLite and PostgreSQL), and checks every answer against it: a status the operation
lists, in its media type, with its schema and its headers, and never a 5xx.

Per backend, one server (module scope: the database fills up as the tests go, as a real
one does), and three passes, each bounded and reproducible (a fixed seed, derandomized
generation, no example database):

- every operation as the admin: the document's examples, boundary and negative cases
  (schemathesis' coverage phase), then generated requests, with every check on;
- every operation as a viewer: 403 where a viewer is not enough;
- stateful, as the admin: chains of calls along the document's links (a model created,
  then read, changed, given versions, rolled out, the rollout read and steered).

A failure shows the request as a curl command, and the server's log tail for a 5xx.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis.errors import Flaky
from schemathesis import AuthContext, Case
from schemathesis.config import SchemathesisConfig

from controlplane.api import create_app
from controlplane.config import Settings
from tests.support import postgres
from tests.support.serve import ADMIN, Server, serve

SEED = 20261202
# Generated requests per operation in the fuzzing phase; the examples and coverage phases
# add their own (a few dozen per operation).
MAX_EXAMPLES = 25
STATEFUL_SCENARIOS = 40  # per round; a round ends early when the server's state moved on
STATEFUL_STEPS = 10
STATEFUL_ROUNDS = 8  # each from its own seed: SEED, SEED + 1, ...
STATEFUL_SECONDS = 45  # no round starts after this
MAX_BODY_BYTES = 64 * 1024

pytestmark = pytest.mark.slow
_databases = itertools.count()

SETTINGS = hypothesis.settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _document() -> dict[str, Any]:
    """The document the server serves (checked against the served one below)."""
    unused = Path(tempfile.gettempdir()) / "contract-document.db"  # never connected to
    settings = Settings(
        admin_token="unused", database_url=f"sqlite:///{unused}", reconcile_enabled=False
    )
    return dict(create_app(settings, start_reconciler=False).openapi())


DOCUMENT = _document()
# A request the document allows may still be refused by a rule it cannot express; the
# check that schema-valid data is accepted (positive_data_acceptance) expects these too:
# 400 on any operation (a NUL in any string, a cursor this server did not issue, a rule
# across fields of the service) and 422 on those with a body (formats the validators check
# beyond the schema: images, label keys, env names, URIs; rules across fields: an image
# unless base_pool, ...). Everything else about valid data stays checked.
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
WITH_BODY = sorted(
    f"{method.upper()} {path}"
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    if "requestBody" in operation
)
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "request-timeout": 30,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            # chains of valid calls: the passes above send the invalid ones
            "stateful": {
                "enabled": True,
                "max-steps": STATEFUL_STEPS,
                "generation": {"mode": "positive"},
                # the document's links only: an inferred one (POST /v1/models -> POST
                # .../rollouts) blames the model for a 404 about the version in the body
                "inference": {"algorithms": []},
            },
        },
        "checks": {
            "enabled": True,
            "positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "400"]},
        },
        "operations": [
            {
                "include-name": WITH_BODY,
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "400", "422"]}
                },
            }
        ],
    }
)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


class Pass:
    """The bearer token of the pass under way (set by the ``token`` fixture)."""

    token = ADMIN


@schema.auth(refresh_interval=None)
class Bearer:
    """The pass's token on every request, except where schemathesis leaves it out on
    purpose (a request without credentials must be a 401)."""

    def get(self, case: Case, context: AuthContext) -> str:
        return Pass.token

    def set(self, case: Case, data: str, context: AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def running(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server per backend for the whole module, on a fresh migrated database."""
    folder = tmp_path_factory.mktemp(f"contract-{request.param}")
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copyfile(template, folder / "controlplane.db")
        with serve(
            f"sqlite:///{folder / 'controlplane.db'}",
            folder / "server.log",
            max_body_bytes=str(MAX_BODY_BYTES),
        ) as server:
            yield server
        return
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    name = f"contract_{next(_databases)}"
    url = postgres.create_database(
        admin_url, name, template=request.getfixturevalue("postgres_template")
    )
    try:
        with serve(url, folder / "server.log", max_body_bytes=str(MAX_BODY_BYTES)) as server:
            yield server
    finally:
        postgres.drop_database(admin_url, name)


@pytest.fixture(scope="module")
def viewer_token(running: Server) -> str:
    response = httpx.post(
        f"{running.url}/v1/tokens",
        json={"name": "contract-viewer", "role": "viewer"},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


@pytest.fixture(params=["admin", "viewer"])
def token(request: pytest.FixtureRequest, viewer_token: str) -> Iterator[str]:
    Pass.token = ADMIN if request.param == "admin" else viewer_token
    yield Pass.token
    Pass.token = ADMIN


def _explained(running: Server) -> str:
    log = running.log.read_text()
    return f"\nserver log (tail):\n{log[-4000:]}" if "Traceback" in log else ""


def test_the_served_document_is_the_one_tested(running: Server) -> None:
    served = httpx.get(f"{running.url}/openapi.json").json()
    assert served == DOCUMENT


@schema.parametrize()
@SETTINGS
def test_every_answer_is_the_one_documented(case: Case, running: Server, token: str) -> None:
    try:
        case.call_and_validate(base_url=running.url)
    except Exception as error:
        error.add_note(_explained(running))
        raise


def test_chains_of_calls_along_the_links(running: Server) -> None:
    failures: list[Exception] = []
    answered: Counter[str] = Counter()  # "METHOD /path STATUS"
    scenarios = 0

    class Calls(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            nonlocal scenarios
            scenarios += 1

        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"base_url": running.url}

        def after_call(self, response: Any, case: Case) -> None:
            super().after_call(response, case)
            answered[f"{case.operation.label} {response.status_code}"] += 1

        def validate_response(self, response: Any, case: Case, **kwargs: Any) -> None:
            try:
                super().validate_response(response, case, **kwargs)
            except Exception as error:
                failures.append(error)
                raise

    started = time.monotonic()
    Pass.token = ADMIN
    settings = hypothesis.settings(
        SETTINGS,
        derandomize=False,  # each round has its own seed, below
        max_examples=STATEFUL_SCENARIOS,
        stateful_step_count=STATEFUL_STEPS,
        # no shrinking: the server has moved on, a replay is another scenario
        phases=[Phase.explicit, Phase.generate],
    )
    rounds = 0
    while rounds < STATEFUL_ROUNDS and time.monotonic() - started < STATEFUL_SECONDS:
        try:
            hypothesis.seed(SEED + rounds)(Calls).run(settings=settings)
        except Flaky:
            # Hypothesis saw a choice play out differently the second time (a name created
            # in an earlier scenario is now taken, so a link has nothing to follow): the
            # server's state, not a failure; the round ends there, as in schemathesis' own
            # runner, and the next one starts from another seed
            if failures:
                raise failures[0] from None
        except Exception as error:
            error.add_note(_explained(running))
            raise
        rounds += 1
    print(  # noqa: T201
        f"stateful: {rounds} rounds, {scenarios} scenarios in {time.monotonic() - started:.1f}s; "
        + ", ".join(f"{key} x{count}" for key, count in sorted(answered.items()))
    )
    # the chains went somewhere: things were created, then found along the links (a name
    # drawn at random is never found: a 2xx on a path with a parameter came from a link)
    assert scenarios >= 10
    followed = [key for key in answered if "{" in key and key.endswith((" 200", " 202", " 204"))]
    assert len(followed) >= 3, answered
