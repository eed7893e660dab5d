"""The command line uses the token saved in the credential store, like the window does, against a loopback Hub."""

from __future__ import annotations

import json

import pytest

from app.hub import set_token
from tests.hostile.contract import refused, run_main
from tests.hub_server import HubServer, hub_server  # noqa: F401 - the fixture
from tests.test_library import GATED_REPO, GRANTED, credential_store  # noqa: F401 - the fixture

ONLINE = {"HF_HUB_OFFLINE": "0"}


@pytest.fixture
def gated(hub_server: HubServer, credential_store) -> HubServer:  # noqa: F811
    from app.paths import demo_checkpoint

    hub_server.add_repo(GATED_REPO, demo_checkpoint(), gated=True, tokens=[GRANTED])
    return hub_server


def test_inspect_of_a_hub_id_uses_the_saved_token(gated):
    refused(["inspect", GATED_REPO], env=ONLINE)  # nothing saved yet: one sentence
    set_token(GRANTED)
    result, left = run_main(["inspect", GATED_REPO, "--json"], env=ONLINE)
    assert result.returncode == 0 and not left, result.stderr
    summary = json.loads(result.stdout)
    assert summary["repo_id"] == GATED_REPO and summary["gated"] is True
    assert summary["config"]["architectures"] == ["LlamaForCausalLM"]
    assert GRANTED not in result.stdout + result.stderr


def test_convert_of_a_hub_id_uses_the_saved_token(gated, tmp_path):
    set_token(GRANTED)
    out = tmp_path / "out"
    result, left = run_main(
        ["convert", GATED_REPO, "-o", str(out), "--preset", "int4", "--ep", "cpu", "--no-check"],
        env=ONLINE,
        timeout=600,
    )
    assert result.returncode == 0 and not left, result.stderr
    record = json.loads((out / "forge.json").read_text())
    assert record["source"]["kind"] == "hub" and record["source"]["id"] == GATED_REPO
    assert GRANTED not in (out / "forge.json").read_text() + result.stdout + result.stderr
