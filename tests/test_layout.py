"""Tests mirror the source one to one, so a module's tests are always where you would look for them.

``src/kluis/<path>/<mod>.py`` is tested in ``tests/<path>/test_<mod>.py`` (``src/kluis/config.py`` in
``tests/test_config.py``, ``src/kluis/crypto/_aes.py`` in ``tests/crypto/test__aes.py``), and every
``tests/<path>/test_<x>.py`` names an existing module, so tests cannot drift away from what they test.
Only the folders in ``UNMIRRORED`` and the files in ``ABOUT_THE_REPOSITORY`` are organised otherwise.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "kluis"
TESTS = ROOT / "tests"

# Modules without a test module of their own. Only pure declarations with no behaviour belong here.
EXEMPT = {
    "__main__.py": "two lines that call the CLI; `python -m kluis` is run by tests/cli/test_main.py",
    "domain/model.py": "re-exports the store's record types for the layers above; no code of its own",
    "store/base.py": "typing.Protocol declarations; SqliteStore implements them (tests/store/test_sqlite.py)",
    "store/records.py": "plain dataclasses with no methods; every store and domain test builds them",
}
EXEMPT_NAME = "__init__.py"  # package markers and re-exports of what each package's modules define

# Test folders that are organised by something other than a source module.
UNMIRRORED = {
    "e2e": "end-to-end journeys against a real server, named by feature",
    "benchmarks": "mirrors benchmarks/, not src/",
    "js": "the JavaScript SDK journey (an npm project)",
    "go": "the Go SDK journey (a Go module)",
    "java": "the Java SDK journey (a Maven project)",
}
# Test modules about the repository itself, or one property across modules, rather than one module.
ABOUT_THE_REPOSITORY = {
    "test_layout.py": "this file: the layout rule",
    "test_client_numbers.py": "one property of every parser of client numbers, durations and times (Hypothesis)",
    "test_packaging.py": "pyproject.toml metadata and the Makefile's `make run`",
}


def _modules() -> list[Path]:
    """Every source module, relative to src/kluis."""
    return sorted(p.relative_to(SRC) for p in SRC.rglob("*.py"))


def _exempt(module: Path) -> bool:
    return module.name == EXEMPT_NAME or module.as_posix() in EXEMPT


def expected_test(module: Path) -> Path:
    """tests/<path>/test_<mod>.py for src/kluis/<path>/<mod>.py (both relative to their roots)."""
    return module.with_name(f"test_{module.name}")


def _test_modules() -> list[Path]:
    """Every test module outside the unmirrored folders, relative to tests/."""
    found = []
    for p in TESTS.rglob("test_*.py"):
        rel = p.relative_to(TESTS)
        if rel.parts[0] in UNMIRRORED or "node_modules" in rel.parts:
            continue
        found.append(rel)
    return sorted(found)


def test_every_source_module_has_its_test_module() -> None:
    missing = [
        f"  src/kluis/{m.as_posix()}  ->  tests/{expected_test(m).as_posix()}"
        for m in _modules()
        if not _exempt(m) and not (TESTS / expected_test(m)).is_file()
    ]
    assert not missing, (
        f"{len(missing)} source module(s) have no test module; write one (or, for a module that only declares, "
        "add it to EXEMPT in tests/test_layout.py with the reason):\n" + "\n".join(missing)
    )


def test_every_test_module_names_a_source_module() -> None:
    sources = {m.as_posix() for m in _modules()}
    strays = []
    for t in _test_modules():
        if t.as_posix() in ABOUT_THE_REPOSITORY:
            continue
        module = t.with_name(t.name.removeprefix("test_"))
        if module.as_posix() not in sources:
            strays.append(f"  tests/{t.as_posix()}  ->  src/kluis/{module.as_posix()} does not exist")
    assert not strays, (
        f"{len(strays)} test module(s) name no source module; rename them after the module they test, or move "
        "their tests into that module's test file:\n" + "\n".join(strays)
    )


def _has_behaviour(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """True unless the body is only a docstring and/or ``...`` (a Protocol or abstract declaration)."""
    for stmt in fn.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # a docstring or ``...``
        return True
    return False


def test_exemptions_are_real_and_only_declare() -> None:
    problems = []
    for name in EXEMPT:
        path = SRC / name
        if not path.is_file():
            problems.append(f"  {name}: exempt but there is no src/kluis/{name}")
            continue
        if (TESTS / expected_test(Path(name))).is_file():
            problems.append(f"  {name}: exempt but it has a test module; drop the exemption")
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _has_behaviour(node):
                problems.append(f"  {name}: defines {node.name}() with a body, so it needs tests of its own")
    for init in SRC.rglob(EXEMPT_NAME):
        tree = ast.parse(init.read_text())
        if any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) for n in ast.walk(tree)):
            problems.append(f"  {init.relative_to(SRC)}: defines code; move it into a module with its own tests")
    for name in ABOUT_THE_REPOSITORY:
        if not (TESTS / name).is_file():
            problems.append(f"  tests/{name}: listed in ABOUT_THE_REPOSITORY but missing")
    assert not problems, "The layout rule's exemptions are out of date:\n" + "\n".join(problems)


def test_the_mapping_itself() -> None:
    assert expected_test(Path("api/routes.py")) == Path("api/test_routes.py")
    assert expected_test(Path("domain/keys/service.py")) == Path("domain/keys/test_service.py")
    assert expected_test(Path("config.py")) == Path("test_config.py")
    assert expected_test(Path("crypto/_aes.py")) == Path("crypto/test__aes.py")
    assert _exempt(Path("api/__init__.py")) and _exempt(Path("store/base.py"))
    assert not _exempt(Path("store/sqlite.py"))
