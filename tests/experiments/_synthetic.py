"""A finished experiment folder as the runner writes it, with given test BLEUs: for the report,
claims and command-line tests, which need no training."""


def _synthetic_experiment(root, bleu: dict, seeds=(0, 1, 2), dense_bleu=(30.0, 30.4, 29.8), dense_only=()):
    """An experiment folder as the runner writes it (manifest, metrics.json, test outputs), with
    given test BLEUs and hypotheses that differ from the references by a known share of lines.
    ``dense_only``: seeds of which only the dense run was trained (the config's dense_seeds);
    ``bleu`` values may be per-seed tuples."""
    import json

    refs = [f"ein hund läuft am strand nummer {i} ." for i in range(40)]
    runs = {"dense": ("dense", 0.0, None), "mp_0.50": ("mp", 0.5, None), "dense/slt_0.50": ("slt", 0.5, "dense")}
    manifest = {"config": {"methods": ["mp", "slt"], "seeds": list(seeds), "dense_seeds": list(dense_only),
                           "mp_slt_source": 0.6}, "runs": list(runs)}
    (root / "experiment.json").write_text(json.dumps(manifest))
    for index, (seed, dense) in enumerate(zip((*seeds, *dense_only), dense_bleu)):
        for name, (kind, sparsity, parent) in runs.items():
            if seed in dense_only and kind != "dense":
                continue
            folder = root / f"seed{seed}" / name
            (folder / "test").mkdir(parents=True)
            wrong = {"dense": 0, "mp": 12, "slt": 4}[kind]
            (folder / "test" / "hypotheses_test.txt").write_text(
                "".join(("eine katze ." if i < wrong else r) + "\n" for i, r in enumerate(refs)))
            (folder / "test" / "references_test.txt").write_text("".join(r + "\n" for r in refs))
            value = dense if kind == "dense" else bleu[kind] if not isinstance(bleu[kind], tuple) else bleu[kind][index]
            (folder / "metrics.json").write_text(json.dumps({
                "run": name, "kind": kind, "seed": seed, "methods": ["mp", "slt"] if kind == "dense" else [kind],
                "reported_in": ["mp", "slt"] if kind == "dense" else [kind], "sparsity_target": sparsity,
                "sparsity": sparsity, "remaining_parameters": 1, "sparse_mb": 1.0, "valid": {"bleu": value},
                "test": {"bleu": value, "chrf": 50.0, "ter": 60.0}, "steps": 10, "wall_time_s": 1.0,
                "lineage_steps": 10, "lineage_wall_time_s": 1.0, "mask_from": parent, "weights_from": parent}))
    return refs
