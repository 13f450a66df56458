"""liger-kernel 0.8.5's experimental modules."""

from liger_kernel.transformers.experimental.embedding import LigerEmbedding

__all__ = ["LigerEmbedding"]
