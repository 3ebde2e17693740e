"""The notebooks run top to bottom (executed with nbclient, as a reader would run them).

01 trains tiny models (~25 s); 02 only reads results: the committed reproduction where it is in
the checkout, else a synthetic experiment in parts with the same files. Budget: ~40 s."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

# Each test executes a notebook in a kernel of its own.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
REPRODUCTION = ROOT / "results" / "multi30k_reproduction"


def _execute(path: Path, cwd: Path) -> tuple[str, list]:
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    images = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.get("data", {})]
    return text, images


def test_all_notebooks_are_tested():
    assert [p.name for p in NOTEBOOKS] == ["01_compose_callbacks.ipynb", "02_results.ipynb"]


def test_compose_callbacks_notebook(tmp_path, data_root):
    text, images = _execute(ROOT / "notebooks" / "01_compose_callbacks.ipynb", tmp_path)
    assert "global sparsity 0.6" in text and "sign agreement with θ5" in text
    assert len(images) >= 2  # the per-layer plot and the experiment's BLEU-vs-sparsity chart


@pytest.mark.parametrize("source", ["committed", "synthetic"])
def test_results_notebook(tmp_path, monkeypatch, source):
    """On the committed reproduction (its finished parts; claims.md once every part has run), and on
    a synthetic experiment in parts with every file, claims.md included."""
    if source == "committed":
        if not REPRODUCTION.is_dir():
            pytest.skip(f"{REPRODUCTION} is not committed")
        results = REPRODUCTION
        monkeypatch.setenv("LIGHTNING_SLT_CONVERGED", str(ROOT / "results" / "multi30k_reproduction_converged"))
    else:
        from lightning_slt.experiments.claims import write_claims
        from tests.experiments.test_claims import _part

        results = tmp_path / "repro"
        _part(results, "a", {"dense/slt_0.90": ("slt", "slt", 0.9, 27.0, 8), "mp_0.90": ("mp", "mp", 0.9, 26.0, 10)},
              dense_seeds=(1, 2))
        _part(results, "b", {"dense/clt_0.90": ("clt", "clt", 0.9, 27.4, 8)}, dense_bleu=30.5)
        write_claims(results)
        monkeypatch.setenv("LIGHTNING_SLT_CONVERGED", str(results))  # the side-by-side chart drawn too
    monkeypatch.setenv("LIGHTNING_SLT_RESULTS", str(results))
    monkeypatch.setenv("LIGHTNING_SLT_CONVERGENCE", str(ROOT / "results" / "multi30k_convergence"))
    text, images = _execute(ROOT / "notebooks" / "02_results.ipynb", tmp_path)
    assert f"{results}: " in text and "part(s)" in text
    if (results / "claims.md").is_file():
        assert "| 1. SLT ≈ MP up to 85 % sparsity" in text  # the claims table, verdicts included
    else:
        assert "claims.md not written yet" in text
    assert "overall sparsity" in text
    curve = (ROOT / "results" / "multi30k_convergence" / "curve.csv").is_file()
    converged = source == "synthetic" or (ROOT / "results" / "multi30k_reproduction_converged").is_dir()
    assert ("T = " in text) == curve and ("has not run yet" in text) != converged
    # BLEU vs sparsity, the heat map, BLEU vs lineage steps; the plateau curve; both protocols
    assert len(images) == 3 + curve + converged
