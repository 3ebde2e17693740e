"""A test run's files: ``hypotheses_<split>.txt``, the ``references_<split>.txt`` they were scored
against (line for line: anyone can re-score or bootstrap them with sacrebleu) and
``metrics_<split>.json``, in one folder.

Written atomically by rank 0; refused before decoding when they would replace one of the
test's own inputs (the checkpoint, the corpus files, the sentencepiece model).
"""

import json
from pathlib import Path
from typing import Any

from lightning_slt.atomic import check_not_inputs, write_text
from lightning_slt.model.evaluation import EvalSummary


def output_files(folder: Path, split: str) -> dict[str, Path]:
    """The files a test writes, by what they are."""
    return {"the test hypotheses file": folder / f"hypotheses_{split}.txt",
            "the test references file": folder / f"references_{split}.txt",
            "the test metrics file": folder / f"metrics_{split}.json"}


def local_checkpoint(ckpt_path: Any) -> str | None:
    """``ckpt_path`` when it names a local file (not a URL), else None."""
    return ckpt_path if ckpt_path and "://" not in str(ckpt_path) else None


def check_outputs_spare_inputs(folder: Path, split: str, ckpt_path: Any, datamodule: Any) -> None:
    """Refuse test outputs that would replace one of the test's own inputs (e.g. ``output_dir``
    set to the corpus folder whose test file is ``hypotheses_test.txt``)."""
    inputs = {"checkpoint": local_checkpoint(ckpt_path), **datamodule.input_files("test")}
    check_not_inputs(output_files(folder, split), inputs, fix="set model.output_dir to another folder")


def metrics_of_test(summary: EvalSummary, datamodule: Any, split: str, ckpt_path: Any, beam_size: int,
                 length_penalty: float, global_step: int) -> dict[str, Any]:
    """What ``metrics_<split>.json`` holds: scores, their signatures, the data and the checkpoint."""
    scores = summary.scores
    checkpoint = str(Path(ckpt_path).resolve()) if local_checkpoint(ckpt_path) else ckpt_path
    return {
        "bleu": scores.bleu, "chrf": scores.chrf, "ter": scores.ter,
        "loss": summary.values["test/loss"], "nll": summary.values["test/nll"],
        "signature": scores.signatures, "n_sentences": scores.n_sentences,
        "split": split, "corpus": getattr(datamodule, "corpus", None),
        "src_lang": getattr(datamodule, "src_lang", None), "tgt_lang": getattr(datamodule, "tgt_lang", None),
        "beam_size": beam_size, "length_penalty": length_penalty,
        "checkpoint": checkpoint,
        "global_step": global_step,
    }


def write_outputs(folder: Path, split: str, hypotheses: list[str], references: list[str], metrics: dict[str, Any]) -> None:
    """Write the three files, each atomically."""
    files = output_files(folder, split)
    write_text(files["the test hypotheses file"], "".join(h + "\n" for h in hypotheses))
    write_text(files["the test references file"], "".join(r + "\n" for r in references))
    write_text(files["the test metrics file"], json.dumps(metrics, indent=2) + "\n")
