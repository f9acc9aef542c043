"""The registry of transformer bodies: name -> whether it loads pretrained weights, and the runs
the paper made with it.

A body is one of the paper's three backbones (docs/spec.md §3.1): ``gpt2`` (language-pretrained),
``igpt`` (image-pretrained), ``random`` (random initialisation). Its builder is
``dtcore.backbones.BUILDERS[name]``. Which weights a pretrained body loads, and which bodies a grid
uses, is each profile's choice (``Profile.weights``: body -> weights reference;
``Profile.bodies``), so two bodies of one modality load their own weights. Standard library only,
so the grid, the command line and a launcher can list the bodies without importing transformers.

Adding a body: one entry here and its builder in :data:`dtcore.backbones.BUILDERS`; a profile
that should run it names it in ``bodies`` and, when it is pretrained, its weights in ``weights``.
"""

from __future__ import annotations

from dataclasses import dataclass

BLOCK = "block"             # the variant family of §5.6.1: one run per block index (block0, block1, ...)


@dataclass(frozen=True)
class Body:
    name: str                 # the backbone name in configs, run ids and test ids
    modality: str | None      # what its weights were pretrained on ("language", "image"): a label for
                              # people; None: random initialisation at the profile's size, no weights
    variants: tuple[str, ...]  # its runs per env and seed (docs/spec.md §1): "K20", "K1", "noclip",
                              # BLOCK (one run per block of the random body)
    description: str          # one line for --help and the docs

    @property
    def pretrained(self) -> bool:
        """True when the body loads weights (the profile's ``weights[name]``)."""
        return self.modality is not None


BODIES: dict[str, Body] = {b.name: b for b in (
    Body("gpt2", "language", ("K20", "K1"), "GPT-2 (or the profile's language body) weights"),
    Body("igpt", "image", ("K20", "noclip"),
         "ImageGPT (or the profile's image body) weights carried into GPT-2"),
    Body("random", None, ("K20", "K1", BLOCK), "the GPT-2 architecture, randomly initialised at the profile's size"),
)}
BACKBONES = tuple(BODIES)   # every registered body, in registry order; a profile's grid: Profile.bodies
BLOCK_DONOR = "gpt2"        # §5.6.1: the body whose blocks replace the random body's


def get_body(name: str) -> Body:
    try:
        return BODIES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BODIES)}") from None


def is_block(variant: str) -> bool:
    """True for a block-replacement variant, ``block{i}``."""
    return variant.startswith(BLOCK) and variant[len(BLOCK):].isdigit()


def variant_family(variant: str) -> str:
    """The family a run variant belongs to: ``block`` for ``block{i}``, the variant itself otherwise."""
    return BLOCK if is_block(variant) else variant


def weights_body(backbone: str, variant: str) -> str | None:
    """The body whose weights a run of ``backbone`` / ``variant`` loads: the backbone itself when it
    is pretrained, the donor :data:`BLOCK_DONOR` for a block-replacement run (``block{i}``: the
    random body), None for a random body's other runs."""
    if is_block(variant):
        return BLOCK_DONOR
    return backbone if get_body(backbone).pretrained else None
