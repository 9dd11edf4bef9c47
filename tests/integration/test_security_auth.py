"""Class: weak authentication details (secrets in argv, comparison timing, unlimited password guessing).

The token (or user:password) comes from a file or the environment; ``--auth-token`` on the command line
still works but warns. Every comparison is ``hmac.compare_digest``. A client address that fails to log in
``GAZELABEL_LOGIN_MAX_FAILURES`` times within ``GAZELABEL_LOGIN_WINDOW_S`` is answered 429 (with
``Retry-After``) until the window passes, on ``POST /auth/token`` and on every other route.
"""

from __future__ import annotations

import argparse
import hmac
import os
import time
from pathlib import Path

import pytest
import requests

from monailabel_app.commands.serve import add_arguments, auth_settings
from monailabel_app.security import AuthConfig, FailureLimiter

pytestmark = pytest.mark.integration


def test_secrets_come_from_files_or_the_environment(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-from-file\n")
    assert AuthConfig.from_env({"GAZELABEL_AUTH_TOKEN_FILE": str(token_file)}).token == "s3cret-from-file"
    basic_file = tmp_path / "basic"
    basic_file.write_text("ann:pw:with:colon\n")
    config = AuthConfig.from_env({"GAZELABEL_BASIC_AUTH_FILE": str(basic_file)})
    assert (config.username, config.password) == ("ann", "pw:with:colon")
    for env, message in [({"GAZELABEL_AUTH_TOKEN_FILE": str(tmp_path / "missing")}, "cannot read"),
                         ({"GAZELABEL_AUTH_TOKEN_FILE": str(tmp_path / "empty")}, "empty"),
                         ({"GAZELABEL_AUTH_TOKEN": "a", "GAZELABEL_AUTH_TOKEN_FILE": str(token_file)}, "not both")]:
        (tmp_path / "empty").write_text("")
        with pytest.raises(ValueError, match=message):
            AuthConfig.from_env(env)


def test_the_cli_reads_secret_files_and_warns_about_argv(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    assert auth_settings(parser.parse_args(["--auth-token-file", str(token_file)]), environ={}) == ("from-file", None)
    assert "warning" not in capsys.readouterr().err
    assert auth_settings(parser.parse_args([]), environ={"GAZELABEL_AUTH_TOKEN": "env"}) == ("env", None)
    assert auth_settings(parser.parse_args(["--auth-token", "argv"]), environ={}) == ("argv", None)
    assert "visible to every user" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["--auth-token", "a", "--auth-token-file", str(token_file)])


def test_comparisons_are_constant_time(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    token = AuthConfig(token="t0ken")
    assert token.accepts("Bearer t0ken") and not token.accepts("Bearer t0kem") and token.exchange("u", "t0ken")
    basic = AuthConfig(username="ann", password="pw")
    assert basic.accepts("Basic YW5uOnB3") and not basic.accepts("Basic YW5uOnB4")
    assert len(calls) >= 6


def test_the_limiter_counts_failures_per_address_in_a_window():
    limiter = FailureLimiter(max_failures=3, window_s=0.5)
    for _ in range(3):
        assert limiter.retry_after("a") == 0
        limiter.failed("a")
    assert limiter.retry_after("a") >= 1 and limiter.retry_after("b") == 0
    time.sleep(0.6)
    assert limiter.retry_after("a") == 0


def test_a_live_server_keeps_the_token_out_of_argv_and_limits_guessing(start_server):
    server = start_server(basic_auth="annotator:right-pass",
                          extra_env={"GAZELABEL_LOGIN_MAX_FAILURES": "5", "GAZELABEL_LOGIN_WINDOW_S": "4"})
    pgid = os.getpgid(server.process.process.pid)
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            if os.getpgid(int(pid)) == pgid:
                assert b"right-pass" not in Path(f"/proc/{pid}/cmdline").read_bytes()
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
    login = f"{server.url}/auth/token"
    for _ in range(5):
        assert requests.post(login, data={"username": "annotator", "password": "guess"}).status_code == 401
    blocked = requests.post(login, data={"username": "annotator", "password": "right-pass"})
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
    assert requests.get(f"{server.url}/info/", auth=("annotator", "right-pass")).status_code == 429
    time.sleep(4.5)
    token = requests.post(login, data={"username": "annotator", "password": "right-pass"})
    assert token.status_code == 200, token.text
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    assert requests.get(f"{server.url}/info/", headers=headers).status_code == 200
    for _ in range(5):
        assert requests.get(f"{server.url}/info/", headers={"Authorization": "Bearer guessed"}).status_code == 401
    assert requests.get(f"{server.url}/info/", headers=headers).status_code == 429  # guessing on any route counts
    assert requests.get(f"{server.url}/auth/").status_code == 200  # the login page itself stays open
