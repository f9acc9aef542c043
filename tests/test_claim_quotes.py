"""Every quote a claim declares is the paper's (or the poster's) own words, from the source it
names; a restatement is declared a paraphrase and shown without quotation marks.

The texts are the paper with its appendices and the poster's summary of the findings
(``../shared/paper`` beside the checkout, where the project keeps them). A quote matches after
whitespace, typographic quotes and the Markdown/LaTeX marks of the text file (``*``, `` ` ``,
``$``) are normalised; "..." and "[...]" mark omissions and insertions, and each remaining piece
must appear, in order, in the source's text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_claims_layer import CLAIMS

PAPER_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "paper"
PAPER = "002_1e5a6c9912b879eb.txt"
POSTER = "000_0e83b83423a34e3c.txt"


def normalise(text: str) -> str:
    text = text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    text = re.sub(r"[*`$]", "", text)
    return re.sub(r"\s+", " ", text).strip().lower()


def pieces(quote: str) -> list[str]:
    """The verbatim pieces of a quote: split at "..." omissions, "[...]" insertions left out."""
    return [normalise(p) for p in re.split(r"\.\.\.|\[[^\]]*\]", quote) if normalise(p)]


def found_in_order(quote: str, text: str) -> bool:
    start = 0
    for piece in pieces(quote):
        at = text.find(piece, start)
        if at < 0:
            return False
        start = at + len(piece)
    return True


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    if not (PAPER_DIR / PAPER).is_file():
        pytest.fail(f"the paper's text is not at {PAPER_DIR / PAPER}: the quotes cannot be checked")
    return {"paper": normalise((PAPER_DIR / PAPER).read_text()), "poster": normalise((PAPER_DIR / POSTER).read_text())}


QUOTED = [c for c in CLAIMS if not c.paraphrase]


@pytest.mark.parametrize("claim", QUOTED, ids=[f"{c.id}:{c.statistic[:20]}" for c in QUOTED])
def test_a_quoted_claim_quotes_its_source_verbatim(claim, texts):
    source = "poster" if claim.source == "poster" else "paper"
    assert found_in_order(claim.quote, texts[source]), f"{claim.id}: not verbatim in the {source}: {claim.quote!r}"


def test_a_paraphrase_is_shown_without_quotation_marks_and_a_quote_with_them():
    for claim in CLAIMS:
        assert claim.sentence.startswith(f"{claim.source}: ")
        assert ("\u201c" in claim.sentence) == (not claim.paraphrase), claim.sentence
        assert ("(paraphrase)" in claim.sentence) == claim.paraphrase, claim.sentence


def test_the_matcher_rejects_words_the_paper_does_not_have(texts):
    assert found_in_order("pre-trained models largely change representation", texts["paper"])
    assert not found_in_order("the performance of iGPT is significantly worse than the others", texts["paper"])
    assert not found_in_order("largely change representation ... We observe that the CKAs", texts["paper"])
