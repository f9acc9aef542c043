"""The registry of transformer bodies: name -> the modality of its weights and its builder.

A body is one of the paper's three backbones (docs/spec.md §3.1): ``gpt2`` (language-pretrained),
``igpt`` (image-pretrained), ``random`` (random initialisation). ``modality`` names the profile's
weights reference it loads (``Profile.language`` / ``Profile.image``; None: no weights) and
``builder`` the function of :mod:`dtcore.backbones` that builds it. Standard library only, so
the grid, the command line and a launcher can list the bodies without importing transformers.

Adding a body: one entry here and its builder in :mod:`dtcore.backbones`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Body:
    name: str                 # the backbone name in configs, run ids and test ids
    modality: str | None      # "language" | "image": the profile's weights it loads; None: random init
    builder: str              # function of dtcore.backbones: (weights, dropout) -> GPT2Model, or for
                              # modality None (n_layer, n_embd, n_head, n_inner, activation, dropout)
    description: str          # one line for --help and the docs


BODIES: dict[str, Body] = {b.name: b for b in (
    Body("gpt2", "language", "gpt2_body", "GPT-2 (or the profile's language body) weights"),
    Body("igpt", "image", "igpt_body", "ImageGPT (or the profile's image body) weights carried into GPT-2"),
    Body("random", None, "random_body", "the GPT-2 architecture, randomly initialised at the profile's size"),
)}
BACKBONES = tuple(BODIES)   # grid order: gpt2, igpt, random
BLOCK_DONOR = "language"    # §5.6.1: the modality whose blocks replace the random body's


def get_body(name: str) -> Body:
    try:
        return BODIES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BODIES)}") from None


def weights_modality(backbone: str, variant: str) -> str | None:
    """The weights a run of ``backbone`` / ``variant`` loads: its body's modality, or for a
    block-replacement run (``block{i}``: the random body) the donor's, :data:`BLOCK_DONOR`."""
    return BLOCK_DONOR if variant.startswith("block") else get_body(backbone).modality
