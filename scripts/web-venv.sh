#!/usr/bin/env bash
# Create the web annotator's venv (default .venv-web): trame-slicer pinned (web_annotator/requirements.txt),
# with this checkout's web_annotator and GazeLabelLib on its path (a .pth file), then check that the app imports.
# `gazelabel web` finds it there (or at $GAZELABEL_WEB_PYTHON). Safe to rerun; make test runs it once per change.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv-web}
python=${PYTHON:-python3}
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
# pip's "Location ... is ignored" warnings come from local mirror folders in this machine's pip config.
"$venv/bin/pip" install --disable-pip-version-check -q -r web_annotator/requirements.txt 2>&1 | grep -v '^WARNING: Location' || true
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
printf '%s\n%s\n' "$PWD" "$PWD/slicer_extension/GazeLabel" > "$site/gazelabel-checkout.pth"
rm -f "$site/gazelabel-repo.pth"
VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow "$venv/bin/python" -c "import trame_slicer, GazeLabelLib.session, web_annotator.app" \
  2> >(grep -v -e WindowResizeEvent -e ConfigureEvent -e 'vtkObject.cxx' -e '^$' >&2)
echo "web-venv: $venv ready (trame-slicer $("$venv/bin/python" -c 'import trame_slicer; print(trame_slicer.__version__)'))"
