from ..callbacks.conftest import dense_ckpt  # noqa: F401  (the shared tiny dense run)
