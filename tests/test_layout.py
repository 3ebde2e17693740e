"""The tests mirror the package: every module ``lightning_slt/<package>/<module>.py`` has its tests
in ``tests/<package>/test_<module>.py`` (``__init__.py`` files aside), and every other test file is
one of the cross-cutting suites named here. A new module without its test file fails here, naming
the file to write."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lightning_slt"
TESTS = ROOT / "tests"
# Suites that test the package as a whole rather than one module.
CROSS_CUTTING = {"test_benchmarks.py", "test_configs.py", "test_imports.py", "test_layout.py", "test_notebooks.py",
                 "test_results_export.py", "namespaces", "reliability", "pruning/test_pruning_api.py",
                 "callbacks/test_fsdp2.py", "examples"}


def _test_file_of(module: Path) -> Path:
    relative = module.relative_to(PACKAGE)
    return TESTS / relative.parent / f"test_{relative.name}"


def test_every_module_has_a_test_file_of_its_own():
    modules = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")
    missing = [f"{_test_file_of(m).relative_to(ROOT)} (for {m.relative_to(ROOT)})" for m in modules
               if not _test_file_of(m).is_file()]
    assert len(modules) >= 73
    assert missing == [], "write these test files"


def test_every_test_file_tests_a_module_or_is_a_cross_cutting_suite():
    orphans = []
    for test_file in sorted(TESTS.rglob("test_*.py")):
        relative = test_file.relative_to(TESTS)
        if relative.parts[0] in CROSS_CUTTING or relative.as_posix() in CROSS_CUTTING:
            continue
        module = PACKAGE / relative.parent / (test_file.name.removeprefix("test_"))
        if not module.is_file():
            orphans.append(f"{relative} (no lightning_slt/{relative.parent / module.name})")
    assert orphans == [], "name each after the module it tests, or list the suite in CROSS_CUTTING"
