"""The layer builder, offline: its pip commands, its pins against the lock, its checks.

Building a layer for real needs the package index (``python -m infra.build_layers``); these
tests check what the builder asks pip for and how it judges the result, on folders made here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra import build_layers as bl
from infra.packaging import PROJECT_ROOT


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if "==" in text:
            name, version = text.split("==", 1)
            out[name.strip().lower().replace("_", "-")] = version.strip()
    return out


def test_install_command_targets_the_lambda_platform(tmp_path: Path) -> None:
    command = bl.install_command("settler", tmp_path / "t", tmp_path / "w", tmp_path / "c.txt")
    text = " ".join(command)
    for part in (
        "-m pip install",
        "--platform manylinux2014_x86_64",
        "--implementation cp",
        "--python-version 3.11",
        "--only-binary=:all:",
        f"--target {tmp_path / 't'}",
        f"--find-links {tmp_path / 'w'}",
        f"--constraint {tmp_path / 'c.txt'}",
        f"--requirement {bl.REQUIREMENTS['settler']}",
    ):
        assert part in text, part


def test_source_only_pins_are_built_as_wheels_first(tmp_path: Path) -> None:
    assert bl.wheel_command("ingest", tmp_path) is None
    command = bl.wheel_command("settler", tmp_path)
    assert command is not None
    assert command[3] == "wheel" and "--no-deps" in command
    assert {"pyqldb==3.2.4", "ionhash==1.2.1", "amazon.ion==0.9.3"} <= set(command)


def test_layer_pins_agree_with_the_tested_sets() -> None:
    lock = pins(PROJECT_ROOT / "requirements" / "dev.txt")
    settler = pins(bl.REQUIREMENTS["settler"])
    assert settler["pyqldb"] == "3.2.4" and settler["botocore"] == "1.40.60"
    for name, version in settler.items():
        assert lock[name] == version, name
    ingest = pins(bl.REQUIREMENTS["ingest"])
    assert ingest["amazon.ion"] == pins(PROJECT_ROOT / "requirements" / "ingest.txt")["amazon.ion"]
    assert "pyqldb" not in ingest and "ionhash" not in ingest
    for name, version in ingest.items():
        if name != "amazon.ion":
            assert lock[name] == version, name


def test_constraints_keep_the_ingest_ion_pin_apart() -> None:
    ingest = bl.constraints("ingest")
    settler = bl.constraints("settler")
    assert not [c for c in ingest if c.lower().startswith("amazon.ion==")]
    assert "amazon.ion==0.9.3" in settler
    assert "botocore==1.40.60" in ingest and "botocore==1.40.60" in settler


def test_check_wheels_refuses_a_platform_wheel(tmp_path: Path) -> None:
    (tmp_path / "pyqldb-3.2.4-py3-none-any.whl").write_bytes(b"")
    bl.check_wheels(tmp_path)
    (tmp_path / "amazon_ion-0.9.3-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
    with pytest.raises(bl.LayerBuildError, match="not pure Python"):
        bl.check_wheels(tmp_path)


def fake_site(root: Path, packages: tuple[str, ...]) -> Path:
    for name in packages:
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "__init__.py").write_text("")
    return root


def test_check_layer_wants_every_import_and_the_ion_c_extension(tmp_path: Path) -> None:
    site = fake_site(tmp_path / "ingest", bl.MUST_HAVE["ingest"])
    with pytest.raises(bl.LayerBuildError, match="C extension"):
        bl.check_layer("ingest", site)
    (site / "amazon" / "_ioncmodule.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\0" * 10)
    assert bl.check_layer("ingest", site) > 0
    settler = fake_site(tmp_path / "settler", bl.MUST_HAVE["settler"][1:])
    with pytest.raises(bl.LayerBuildError, match="lacks pyqldb"):
        bl.check_layer("settler", settler)


def test_prune_drops_caches_and_scripts(tmp_path: Path) -> None:
    site = fake_site(tmp_path, ("pkg",))
    (site / "pkg" / "__pycache__").mkdir()
    (site / "pkg" / "__pycache__" / "x.pyc").write_bytes(b"")
    (site / "bin").mkdir()
    (site / "bin" / "tool").write_text("")
    bl.prune(site)
    assert not (site / "pkg" / "__pycache__").exists() and not (site / "bin").exists()
    assert (site / "pkg" / "__init__.py").is_file()
