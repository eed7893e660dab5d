"""Hub ids on the command line: the token saved in the credential store is used (as the window does), and a server
that answers a web page instead of the Hub API (a captive portal, a proxy, a wrong HF_ENDPOINT) is one sentence."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

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


class _WebPage(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html><body>Please sign in to the hotel Wi-Fi.</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def captive_portal(tmp_path) -> Iterator[dict[str, str]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _WebPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield {**ONLINE, "HF_ENDPOINT": f"http://127.0.0.1:{server.server_port}", "HF_HOME": str(tmp_path / "hf")}
    finally:
        server.shutdown()


@pytest.mark.parametrize("command", ["inspect", "convert"])
def test_a_server_that_answers_a_web_page_is_one_sentence(command, captive_portal, tmp_path):
    out = tmp_path / "out"
    args = [command, "acme/tiny"] + (["-o", str(out), "--ep", "cpu"] if command == "convert" else [])
    result = refused(args, env=captive_portal, output=out, watch=[tmp_path / "hf"])
    assert "does not answer like the Hub" in result.line
