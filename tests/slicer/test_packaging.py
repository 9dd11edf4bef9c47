"""The extension as Slicer builds and loads it: CMake lists every file, the catalog entry follows Slicer's
schema, the Qt-side scripts compile, the widget names the code uses exist in the .ui, and the logic never
imports ``models`` (Slicer's Python does not have it)."""

from __future__ import annotations

import ast
import json
import py_compile
import re
import xml.etree.ElementTree as ET
from pathlib import Path

EXT = Path(__file__).resolve().parents[2] / "slicer_extension"
MODULE = EXT / "GazeLabel"
# slicer-extension-catalog-entry-schema-v1.0.2: required keys and every allowed key.
CATALOG_REQUIRED = {"$schema", "category", "scm_url"}
CATALOG_ALLOWED = CATALOG_REQUIRED | {"scm_revision", "scm_type", "build_dependencies", "dicom_support_rule",
                                      "build_subdirectory", "enabled", "tier"}


def test_module_cmake_lists_every_script_and_resource():
    cmake = (MODULE / "CMakeLists.txt").read_text().replace("${MODULE_NAME}", "GazeLabel")
    listed = set(re.findall(r"^\s+(\S+\.(?:py|png|ui))\s*$", cmake, re.MULTILINE))
    on_disk = {p.relative_to(MODULE).as_posix() for p in MODULE.glob("GazeLabelLib/*.py")}
    on_disk |= {"GazeLabel.py", "Resources/Icons/GazeLabel.png", "Resources/UI/GazeLabel.ui"}
    assert listed == on_disk
    assert "slicerMacroBuildScriptedModule" in cmake and "WITH_GENERIC_TESTS" in cmake


def test_extension_cmake_has_the_metadata():
    cmake = (EXT / "CMakeLists.txt").read_text()
    for key in ("HOMEPAGE", "CATEGORY", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS", "DEPENDS"):
        assert re.search(rf'set\(EXTENSION_{key} "[^"]+"\)', cmake), f"EXTENSION_{key} missing"
    for macro in ("find_package(Slicer REQUIRED)", "add_subdirectory(GazeLabel)", "Slicer_EXTENSION_GENERATE_CONFIG",
                  "Slicer_EXTENSION_CPACK"):
        assert macro in cmake


def test_catalog_entry_follows_the_schema():
    entry = json.loads((EXT / "GazeLabel.json").read_text())
    assert CATALOG_REQUIRED <= set(entry) <= CATALOG_ALLOWED
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.2.json#")
    assert entry["category"] in (EXT / "CMakeLists.txt").read_text()
    assert 1 <= entry["tier"] <= 5 and entry["scm_type"] in ("git", "local")


def test_qt_side_scripts_compile(tmp_path):
    for script in (MODULE / "GazeLabel.py", MODULE / "Testing" / "Python" / "GazeLabelViewsTest.py"):
        py_compile.compile(str(script), cfile=str(tmp_path / (script.stem + ".pyc")), doraise=True)


def test_widget_names_exist_in_the_ui():
    names = {w.get("name") for w in ET.parse(MODULE / "Resources" / "UI" / "GazeLabel.ui").iter("widget")}
    used = set(re.findall(r"self\.ui\.(\w+)", (MODULE / "GazeLabel.py").read_text()))
    assert used and used <= names, f"widgets used but not in the .ui: {sorted(used - names)}"


def test_logic_never_imports_models():
    for path in [MODULE / "GazeLabel.py", *MODULE.glob("GazeLabelLib/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(m == "models" or m.startswith("models.") for m in modules), f"{path.name} imports {modules}"
