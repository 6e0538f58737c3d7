"""The layer builder, offline: its locks, its pip commands, its checks.

Building a layer for real needs the package index (``python -m infra.build_layers``); these
tests check the locks against the requirements and the project's lock, what the builder asks pip
for and how it judges the result, on folders made here. The layers themselves are built and
their handlers invoked in ``test_infra_layer_imports.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra import build_layers as bl
from infra import lambdas
from infra.packaging import PROJECT_ROOT


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if "==" in text:
            name, version = text.split("==", 1)
            out[bl.normalize(name.strip())] = version.split()[0].strip()
    return out


DEV = pins(PROJECT_ROOT / "requirements" / "dev.txt")


@pytest.mark.parametrize("name", [*bl.LAYERS, bl.RUNTIME])
def test_every_requirement_is_locked_at_its_version_with_a_hash(name: str) -> None:
    locked = bl.read_lock(name)
    for dist, version in pins(bl.INPUTS[name]).items():
        assert locked[dist].version == version, dist
    for pin in locked.values():
        assert len(pin.sha256) == 64
        assert pin.name not in bl.EXCLUDE[name], pin.name
    assert {bl.normalize(s.split("==")[0]) for s in bl.SOURCE_ONLY[name]} == {
        p.name for p in locked.values() if p.sdist
    }


@pytest.mark.parametrize("name", [*bl.LAYERS, bl.RUNTIME])
def test_locks_hold_what_the_tests_ran(name: str) -> None:
    """Every pin the project's lock also pins is at its version there (the ingest layer's
    amazon.ion 0.15 is the ingest environment's, requirements/ingest.txt)."""
    for pin in bl.read_lock(name).values():
        if name == "ingest" and pin.name == "amazon-ion":
            assert pin.version == pins(PROJECT_ROOT / "requirements" / "ingest.txt")["amazon-ion"]
            continue
        assert DEV[pin.name] == pin.version, pin.name


def test_the_layers_keep_the_qldb_set_and_leave_out_what_nothing_imports() -> None:
    settler, ingest = bl.read_lock("settler"), bl.read_lock("ingest")
    assert settler["pyqldb"].version == "3.2.4"
    assert settler["boto3"].version == settler["botocore"].version == "1.40.60"
    assert settler["amazon-ion"].version == "0.9.3" and "ionhash" in settler
    assert ingest["amazon-ion"].version == "0.15.0"
    for absent in ("boto3", "botocore", "s3transfer", "pyqldb", "ionhash"):
        assert absent not in ingest, absent  # the runtime's, or the settler's only
    for name in ("numpy", "jsonconversion", "grpcio", "protobuf", "opensearch-protobufs"):
        assert name not in ingest and name not in settler, name
    # The lock says what it left out, and why.
    text = bl.LOCKS["ingest"].read_text()
    assert "#   numpy: " in text and "#   grpcio: " in text


def test_the_builder_targets_the_architecture_the_functions_run_on() -> None:
    assert lambdas.ARCHITECTURE.name == {"x86_64": "x86_64", "aarch64": "arm64"}[bl.MACHINE]
    assert bl.PLATFORM.endswith(bl.MACHINE) and bl.PLATFORM.startswith("manylinux2014_")
    assert lambdas.RUNTIME.name == f"python{bl.PYTHON_VERSION}"
    for name in bl.LOCKS:
        assert bl.PLATFORM in bl.LOCKS[name].read_text()


def test_install_commands_take_exactly_the_lock_for_the_lambda_platform(tmp_path: Path) -> None:
    text = " ".join(bl.install_command(tmp_path / "t", tmp_path / "r.txt"))
    for part in (
        "-m pip install",
        "--no-deps",
        "--require-hashes",
        "--no-compile",
        "--platform manylinux2014_x86_64",
        "--implementation cp",
        "--python-version 3.11",
        "--only-binary=:all:",
        f"--target {tmp_path / 't'}",
        f"--requirement {tmp_path / 'r.txt'}",
    ):
        assert part in text, part
    sources = [p for p in bl.read_lock("settler").values() if p.sdist]
    local = bl.local_install_command(tmp_path / "t", tmp_path / "w", sources)
    assert {"--no-index", "--no-deps", "pyqldb==3.2.4", "ionhash==1.2.1"} <= set(local)
    wheel = bl.sdist_command(tmp_path / "s.txt", tmp_path / "w")
    assert wheel[3] == "wheel" and {"--no-deps", "--require-hashes"} <= set(wheel)


def test_the_resolution_is_for_the_platform_constrained_by_the_project_lock(
    tmp_path: Path,
) -> None:
    command = bl.resolve_command("ingest", tmp_path / "r.json", tmp_path / "w", tmp_path / "c")
    text = " ".join(command)
    assert "--dry-run" in command and f"--report {tmp_path / 'r.json'}" in text
    assert f"--requirement {bl.INPUTS['ingest']}" in text and "--platform manylinux2014" in text
    ingest, settler = bl.constraints("ingest"), bl.constraints("settler")
    assert not [c for c in ingest if c.lower().startswith("amazon.ion==")]
    assert "amazon.ion==0.9.3" in settler
    assert "botocore==1.40.60" in ingest and "botocore==1.40.60" in settler


def report_item(name: str, version: str, url: str, sha: str = "a" * 64) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "version": version},
        "download_info": {"url": url, "archive_info": {"hashes": {"sha256": sha}}},
    }


def test_lock_pins_leave_out_the_exclusions_and_refuse_a_stale_one(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "w"
    pypi = "https://files.example/"
    items = [
        report_item("amazon.ion", "0.15.0", pypi + "amazon_ion-0.15.0-cp311-x.whl"),
        report_item("numpy", "2.2.6", pypi + "numpy-2.2.6-cp311-x.whl"),
        report_item("jsonconversion", "2.0.0", pypi + "j-2.0.0-py3-none-any.whl"),
        report_item("grpcio", "1", pypi + "g.whl"),
        report_item("protobuf", "1", pypi + "p.whl"),
        report_item("opensearch-protobufs", "1", pypi + "o.whl"),
    ]
    got, left_out = bl.lock_pins("ingest", {"install": items}, {}, wheelhouse)
    assert [p.name for p in got] == ["amazon-ion"]
    assert set(left_out) == set(bl.EXCLUDE["ingest"])
    with pytest.raises(bl.LayerBuildError, match="EXCLUDE names what the closure lacks: numpy"):
        bl.lock_pins("ingest", {"install": items[:1] + items[2:]}, {}, wheelhouse)
    with pytest.raises(bl.LayerBuildError, match="non-wheel"):
        bl.lock_pins(
            "runtime", {"install": [report_item("x", "1", pypi + "x-1.tar.gz")]}, {}, wheelhouse
        )


def test_a_wheel_built_here_is_locked_by_its_source_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(bl.EXCLUDE, "runtime", {})
    wheelhouse = tmp_path / "w"
    built = report_item("pyqldb", "3.2.4", (wheelhouse / "pyqldb-3.2.4-py3-none-any.whl").as_uri())
    got, _ = bl.lock_pins("runtime", {"install": [built]}, {"pyqldb==3.2.4": "b" * 64}, wheelhouse)
    assert got == [bl.Pin("pyqldb", "3.2.4", "b" * 64, sdist=True)]
    with pytest.raises(bl.LayerBuildError, match="no source pin"):
        bl.lock_pins("runtime", {"install": [built]}, {}, wheelhouse)


def test_a_rendered_lock_reads_back(tmp_path: Path) -> None:
    written = [bl.Pin("a-b", "1.0", "c" * 64), bl.Pin("pyqldb", "3.2.4", "d" * 64, sdist=True)]
    path = tmp_path / "x.lock"
    path.write_text(bl.render_lock("settler", written, {"numpy": "why"}))
    assert list(bl.read_lock("settler", path).values()) == written
    path.write_text("a==1\n")
    with pytest.raises(bl.LayerBuildError, match="exactly one sha256"):
        bl.read_lock("settler", path)
    path.write_text("a>=1 --hash=sha256:" + "c" * 64 + "\n")
    with pytest.raises(bl.LayerBuildError, match="not pinned"):
        bl.read_lock("settler", path)


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


def elf(machine: int) -> bytes:
    return b"\x7fELF\x02\x01\x01" + b"\0" * 11 + machine.to_bytes(2, "little") + b"\0" * 8


def test_check_layer_wants_every_import_the_ion_c_extension_and_the_right_machine(
    tmp_path: Path,
) -> None:
    site = fake_site(tmp_path / "ingest", bl.MUST_HAVE["ingest"])
    with pytest.raises(bl.LayerBuildError, match="C extension"):
        bl.check_layer("ingest", site)
    so = site / "amazon" / "_ioncmodule.cpython-311-x86_64-linux-gnu.so"
    so.write_bytes(elf(62))
    assert bl.check_layer("ingest", site) > 0
    so.write_bytes(elf(183))  # aarch64
    with pytest.raises(bl.LayerBuildError, match="not an x86_64 shared object"):
        bl.check_layer("ingest", site)
    so.write_bytes(elf(62))
    fake_site(site, ("numpy",))
    with pytest.raises(bl.LayerBuildError, match="carries numpy"):
        bl.check_layer("ingest", site)
    settler = fake_site(tmp_path / "settler", bl.MUST_HAVE["settler"][1:])
    with pytest.raises(bl.LayerBuildError, match="lacks pyqldb"):
        bl.check_layer("settler", settler)


def test_prune_drops_caches_scripts_and_the_unimported_parts(tmp_path: Path) -> None:
    site = fake_site(tmp_path, ("pkg", "amazon/ion", *bl.PRUNE_PATHS["ingest"]))
    (site / "pkg" / "__pycache__").mkdir()
    (site / "pkg" / "__pycache__" / "x.pyc").write_bytes(b"")
    (site / "bin").mkdir()
    (site / "bin" / "tool").write_text("")
    bl.prune("ingest", site)
    assert not (site / "pkg" / "__pycache__").exists() and not (site / "bin").exists()
    assert not (site / "amazon" / "ionbenchmark").exists()
    assert (site / "pkg" / "__init__.py").is_file() and (site / "amazon" / "ion").is_dir()
    with pytest.raises(bl.LayerBuildError, match="PRUNE_PATHS names amazon/ionbenchmark"):
        bl.prune("ingest", site)


def test_the_cache_key_follows_the_locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = bl.cache_key()
    lock = tmp_path / "ingest.lock"
    lock.write_text(bl.LOCKS["ingest"].read_text() + "# changed\n")
    monkeypatch.setitem(bl.LOCKS, "ingest", lock)
    assert bl.cache_key() != before
