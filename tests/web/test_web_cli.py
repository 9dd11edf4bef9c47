"""``gazelabel web``'s command line without a browser: login from flags, files and the environment (secrets never
on the page), options that cannot work refused in one line, the hand-over to the web venv, and the server's
banner naming the web annotator's address (``gazelabel serve --web-port``, which ``make demo`` uses)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from web_annotator import command, options


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    options.add_arguments(p)
    return p.parse_args(list(argv))


def test_login_from_flags_files_and_environment(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\nignored\n")
    assert options.credentials(parse(), environ={}) == options.Credentials("none")
    assert options.credentials(parse("--token-file", str(secret)), environ={}) == options.Credentials("token", "s3cret")
    assert options.credentials(parse("--user", "ann", "--password-file", str(secret)), environ={}) == \
        options.Credentials("basic", None, "ann", "s3cret")
    assert options.credentials(parse(), environ={"GAZELABEL_AUTH_TOKEN": "t"}).token == "t"
    assert options.credentials(parse(), environ={"GAZELABEL_BASIC_AUTH": "ann:pw"}) == options.Credentials("basic", None, "ann", "pw")
    assert options.credentials(parse("--user", "ann"), environ={"GAZELABEL_PASSWORD": "pw"}).password == "pw"
    assert options.credentials(parse("--auth", "none"), environ={"GAZELABEL_AUTH_TOKEN": "t"}) == options.Credentials("none")
    with pytest.raises(ValueError, match="--auth token: give --token-file"):
        options.credentials(parse("--auth", "token"), environ={})
    with pytest.raises(ValueError, match="--auth basic: give --user NAME and --password-file"):
        options.credentials(parse("--user", "ann"), environ={})
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="--token-file .*: the file is empty"):
        options.credentials(parse("--token-file", str(empty)), environ={})
    with pytest.raises(ValueError, match="cannot read it"):
        options.credentials(parse("--password-file", str(tmp_path / "missing"), "--user", "a"), environ={})


@pytest.mark.parametrize("argv, message", [
    (("--host", "0.0.0.0"), "refusing to serve it beyond this machine without --insecure"),
    (("--port", "0"), "a TCP port is 1-65535"),
    (("--samples", "40"), "draw 1 to 16 scanpaths"),
    (("--server", "ftp://x"), "must start with http"),
])
def test_options_that_cannot_work_are_refused(argv, message):
    with pytest.raises(ValueError, match=message):
        options.check(parse(*argv))
    options.check(parse("--host", "0.0.0.0", "--insecure"))


def test_the_command_line_goes_to_the_web_venv_whole(tmp_path):
    args = parse("--server", "http://127.0.0.1:9", "--port", "8123", "--user", "ann", "--password-file", "/p",
                 "--samples", "5", "--no-connect", "--encoder", "png")
    assert parse(*options.to_argv(args)) == args
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    python.write_text("")
    argv, env = command.web_command(["--port", "1"], environ={"GAZELABEL_WEB_PYTHON": str(python), "PYTHONPATH": "/x"})
    assert argv == [str(python), "-m", "web_annotator", "--port", "1"]
    paths = env["PYTHONPATH"].split(":")
    assert paths[:2] == [str(command.REPO), str(command.REPO / "slicer_extension" / "GazeLabel")] and paths[-1] == "/x"
    assert env["VTK_DEFAULT_OPENGL_WINDOW"] == "vtkEGLRenderWindow"
    with pytest.raises(FileNotFoundError, match=r"does not exist: run `bash scripts/web-venv.sh`"):
        command.web_command([], environ={"GAZELABEL_WEB_PYTHON": str(tmp_path / "none")})


def test_the_server_banner_names_the_web_annotator(tmp_path):
    from monailabel_app.launcher import ServerSettings, _connection_help

    s = ServerSettings(studies=str(tmp_path), models_dir=tmp_path, work_dir=tmp_path, port=8000)
    plain = _connection_help(s, "img")
    assert "Browser:" not in plain and "3D Slicer" in plain
    web = _connection_help(s, "img", "http://127.0.0.1:8080/  (gazelabel web ...)")
    lines = web.splitlines()
    slicer = next(i for i, line in enumerate(lines) if line.startswith("  Server = "))
    assert lines[slicer + 1] == "Browser: http://127.0.0.1:8080/  (gazelabel web ...)"
    assert "Browser: no web annotator (no venv)" in _connection_help(s, "img", "no venv")


def test_make_demo_serves_the_web_annotator_too():
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    demo = makefile.split("\ndemo:")[1].split("\n\n")[0]
    assert "$(WEB_STAMP)" in demo.splitlines()[0] and "gazelabel serve --web-port $(WEB_PORT)" in demo
    assert "$(WEB_STAMP)" in makefile.split("\ntest:")[1].splitlines()[0]
