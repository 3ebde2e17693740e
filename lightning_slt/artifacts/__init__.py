"""Reading the files a user hands in: torch and the standard library only, nothing else of ours."""

from .loading import read_checkpoint

__all__ = ["read_checkpoint"]
