"""An offline sentiment scorer for news headlines: VADER plus a small finance lexicon.

No Dagster, no database, no network. VADER (``vaderSentiment``) is a lexicon- and rule-based
scorer whose lexicon ships inside the wheel and is read from the package directory: nothing is
downloaded at import or at run time (NLTK's copy of VADER, by contrast, needs
``nltk.download``). Its general-purpose lexicon lacks most words that move a market headline
(``surge``, ``plunge``, ``beats``, ``downgrade`` …), so :data:`FINANCE_LEXICON`, owned by this
project, is laid over it.

What a score is: ``compound`` is VADER's normalised sum of the valences of the words, a float
statistic in [-1, 1] (-1 most negative, +1 most positive). It is *not* a price, a return or a
probability, and it is not comparable across scorers or lexicon versions: store it as a float,
never as a Decimal next to prices.

Labels use VADER's conventional thresholds (Hutto & Gilbert, 2014):

- ``positive``: compound >= 0.05
- ``negative``: compound <= -0.05
- ``neutral``: anything in between.

What is scored: the headline plus the first two sentences of the article's text. A headline
alone is often neutral wording over a telling lede; the whole text adds boilerplate
(disclaimers, "about the company") that dilutes the score and costs time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

SentimentLabel = Literal["positive", "negative", "neutral"]

POSITIVE_THRESHOLD = 0.05
"""Compound at or above this is ``positive`` (VADER's conventional threshold)."""
NEGATIVE_THRESHOLD = -0.05
"""Compound at or below this is ``negative`` (VADER's conventional threshold)."""

LEDE_SENTENCES = 2
"""Sentences of the article's text scored with its title."""

# Only this much of an article's text is searched for its first sentences: a lede is short,
# and an article body can be tens of kilobytes that would otherwise be scanned for nothing.
_LEDE_SEARCH_CHARS = 1_000

FINANCE_LEXICON: dict[str, float] = {
    # Single tokens only: VADER looks words up one token at a time (lower-cased), so a phrase
    # such as "guidance cut" cannot be an entry ("cut"/"cuts" are already in VADER's lexicon).
    # Values are on VADER's scale, -4 (most negative) to +4 (most positive); its own entries
    # for comparable words sit around ±1.5 to ±2.5 (e.g. "profit" +1.9, "bankrupt" -2.6).
    #
    # Results against expectations. VADER has "miss" at -0.6 (as in missing someone); in a
    # headline it is an earnings miss, as strong as a beat.
    "beat": 2.0,
    "beats": 2.0,
    "topped": 1.5,
    "exceeds": 1.5,
    "miss": -2.0,
    "misses": -2.0,
    "missed": -2.0,
    "shortfall": -1.8,
    # Analyst actions.
    "upgrade": 1.8,
    "upgrades": 1.8,
    "upgraded": 1.8,
    "downgrade": -1.8,
    "downgrades": -1.8,
    "downgraded": -1.8,
    "outperform": 1.8,
    "outperforms": 1.8,
    "underperform": -1.8,
    "underperforms": -1.8,
    "bullish": 2.0,
    "bearish": -2.0,
    # Price moves.
    "surge": 2.0,
    "surges": 2.0,
    "surged": 2.0,
    "soars": 2.2,
    "soared": 2.2,
    "jumps": 1.5,
    "rally": 1.8,
    "rallies": 1.8,
    "rallied": 1.8,
    "plunge": -2.5,
    "plunges": -2.5,
    "plunged": -2.5,
    "tumbles": -2.2,
    "tumbled": -2.2,
    "slump": -1.8,
    "slumps": -1.8,
    "sinks": -1.8,
    "selloff": -1.8,
    # Corporate events. "record" is mildly positive: in a headline it is mostly a record
    # high, revenue or profit; "record low" still comes out negative through "low".
    "record": 1.0,
    "bankruptcy": -3.0,
    "recall": -1.8,
    "recalls": -1.8,
    "layoffs": -1.8,
    "probe": -1.5,
    "fined": -1.8,
    "delisted": -2.5,
    # VADER has "lawsuit" at only -0.9; being sued is worse news than that for a stock.
    "lawsuit": -1.8,
    # Neutral in market news, though VADER scores them as everyday words: shares are units of
    # stock, not sharing; "Securities and Exchange Commission", "interest rates", "credit
    # facility", the energy sector and the companies Amazon and Wells Fargo say nothing
    # good. Without these, routine filings and sector roundups came out positive.
    "share": 0.0,
    "shares": 0.0,
    "securities": 0.0,
    "interest": 0.0,
    "credit": 0.0,
    "energy": 0.0,
    "amazon": 0.0,
    "wells": 0.0,
}


@dataclass(frozen=True, slots=True)
class Sentiment:
    """A headline's score: ``compound`` in [-1, 1] (a statistic, not a price) and its label."""

    compound: float
    label: SentimentLabel


class Headline(Protocol):
    """What :meth:`HeadlineScorer.score_many` reads of an item (a ``NewsArticle`` has both)."""

    @property
    def title(self) -> str: ...

    @property
    def text(self) -> str | None: ...


def label_for(compound: float) -> SentimentLabel:
    """The label of a compound score, by VADER's conventional thresholds (±0.05)."""
    if compound >= POSITIVE_THRESHOLD:
        return "positive"
    if compound <= NEGATIVE_THRESHOLD:
        return "negative"
    return "neutral"


# A sentence ends at . ! or ? followed by white space. A heuristic: an abbreviation such as
# "Inc." ends a "sentence" early, which only means a little less of the lede is scored.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def lede(text: str | None, sentences: int = LEDE_SENTENCES) -> str:
    """The first ``sentences`` sentences of ``text`` (all of a short text), white space tidied."""
    if not text:
        return ""
    head = text[:_LEDE_SEARCH_CHARS].strip()
    return " ".join(part for part in _SENTENCE_END.split(head, maxsplit=sentences)[:sentences])


class HeadlineScorer:
    """VADER with :data:`FINANCE_LEXICON` (and ``extra_lexicon``, if given) laid over it.

    Building one reads VADER's lexicon files from its package directory (about 0.03 s), so
    build it once and reuse it. Scoring only reads the lexicon: one scorer may be shared by
    threads. Scores are deterministic: the same text always gets the same score.
    """

    def __init__(self, extra_lexicon: Mapping[str, float] | None = None) -> None:
        self._analyzer = SentimentIntensityAnalyzer()
        # VADER looks tokens up lower-cased, so entries must be lower-case to ever match.
        overlay = {**FINANCE_LEXICON, **(extra_lexicon or {})}
        self._analyzer.lexicon.update({word.lower(): value for word, value in overlay.items()})

    def score_text(self, text: str) -> Sentiment:
        """The score of ``text`` as it is (no sentence selection)."""
        compound = float(self._analyzer.polarity_scores(text)["compound"])
        return Sentiment(compound, label_for(compound))

    def score(self, title: str, text: str | None) -> Sentiment:
        """The score of ``title`` plus the first two sentences of ``text``."""
        title = title.strip()
        lead = lede(text)
        if lead and title and title[-1] not in ".!?":
            # Keep the title its own sentence, so that VADER's "but" rule and punctuation
            # emphasis do not run across the seam.
            title += "."
        return self.score_text(f"{title} {lead}".strip())

    def score_many(self, items: Iterable[Headline]) -> list[Sentiment]:
        """:meth:`score` of each item's ``title`` and ``text``, in order (a convenience: it is
        no faster per item than :meth:`score`)."""
        return [self.score(item.title, item.text) for item in items]


__all__ = [
    "FINANCE_LEXICON",
    "LEDE_SENTENCES",
    "NEGATIVE_THRESHOLD",
    "POSITIVE_THRESHOLD",
    "Headline",
    "HeadlineScorer",
    "Sentiment",
    "SentimentLabel",
    "label_for",
    "lede",
]
