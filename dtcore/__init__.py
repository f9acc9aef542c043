"""dtcore: the library behind dtclaims.

Data (D4RL HDF5 / pickle loading, the batch sampler), the Decision Transformer of Takagi
(NeurIPS 2022) over HuggingFace GPT-2 bodies, training, batched evaluation, and the paper's
measures (``dtcore.metrics``). Nothing runs at import.
"""

__version__ = "0.1.0"
