"""The offline headline scorer: obvious headlines get the obvious label, offline, repeatably."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from quote_pipeline.sentiment import (
    FINANCE_LEXICON,
    HeadlineScorer,
    Sentiment,
    label_for,
    lede,
)

# Headlines whose label any reader would agree on; the scorer must too. A guard against a
# lexicon change that quietly turns the scorer's answers around.
LABELLED_HEADLINES = [
    ("Apple beats earnings expectations, shares surge to record high", "positive"),
    ("Amazon shares soar after strong quarterly results", "positive"),
    ("Analyst upgrades Nvidia to outperform", "positive"),
    ("Netflix tops subscriber estimates, shares jump", "positive"),
    ("Oil prices rally as supply tightens", "positive"),
    ("Pharma company wins FDA approval for new drug", "positive"),
    ("Investors bullish on AI chip demand", "positive"),
    ("Tesla recalls 2 million vehicles; stock plunges amid regulatory probe", "negative"),
    ("Company misses revenue estimates and cuts guidance", "negative"),
    ("Bank faces lawsuit over fees", "negative"),
    ("Intel stock tumbles after weak forecast", "negative"),
    ("Boeing downgraded to underperform at major broker", "negative"),
    ("Retailer files for bankruptcy protection", "negative"),
    ("Startup announces layoffs of 10% of staff", "negative"),
    ("Analysts turn bearish on regional lenders", "negative"),
    ("Stock hits record low after fraud allegations", "negative"),
    ("SEC opens probe into accounting practices", "negative"),
    ("Microsoft to present at investor conference", "neutral"),
    ("Company schedules fourth-quarter earnings release date", "neutral"),
    ("Walmart declares quarterly dividend", "neutral"),
    ("Ford names new chief financial officer", "neutral"),
    ("Meta announces annual shareholder meeting date", "neutral"),
]


@pytest.fixture(scope="module")
def scorer() -> HeadlineScorer:
    return HeadlineScorer()


@pytest.mark.parametrize(("title", "expected"), LABELLED_HEADLINES)
def test_obvious_headlines_get_the_obvious_label(
    scorer: HeadlineScorer, title: str, expected: str
) -> None:
    sentiment = scorer.score(title, None)
    assert sentiment.label == expected, f"{title!r} scored {sentiment.compound}"
    assert -1.0 <= sentiment.compound <= 1.0
    assert isinstance(sentiment.compound, float)


def test_labels_use_vaders_thresholds() -> None:
    assert label_for(0.05) == "positive"
    assert label_for(0.0499) == "neutral"
    assert label_for(0.0) == "neutral"
    assert label_for(-0.0499) == "neutral"
    assert label_for(-0.05) == "negative"
    assert label_for(1.0) == "positive"
    assert label_for(-1.0) == "negative"


def test_the_finance_lexicon_is_applied(scorer: HeadlineScorer) -> None:
    plain = SentimentIntensityAnalyzer()
    assert "plunges" not in plain.lexicon  # the reason the project has a lexicon of its own
    headline = "Stock plunges"
    assert plain.polarity_scores(headline)["compound"] == 0.0
    assert scorer.score(headline, None).compound < -0.05
    # It overrides VADER where VADER's sense is not the market's ("miss" someone: -0.6).
    assert plain.lexicon["miss"] != FINANCE_LEXICON["miss"]
    assert (
        scorer.score("Earnings miss", None).compound
        < plain.polarity_scores("Earnings miss")["compound"]
    )


def test_the_lexicon_is_well_formed() -> None:
    assert 30 <= len(FINANCE_LEXICON) <= 60
    for word, value in FINANCE_LEXICON.items():
        assert word == word.lower() and " " not in word, word  # VADER matches single tokens
        assert -4.0 <= value <= 4.0, word  # 0.0: a word neutral in market news


def test_extra_lexicon_entries_override() -> None:
    scorer = HeadlineScorer(extra_lexicon={"Widgetize": 3.0})
    assert scorer.score("Company will widgetize", None).label == "positive"
    assert HeadlineScorer().score("Company will widgetize", None).label == "neutral"


def test_title_and_the_first_two_sentences_are_scored(scorer: HeadlineScorer) -> None:
    text = (
        "Shares plunged 20% in early trading. The company also announced layoffs. "
        "Analysts were thrilled and delighted and happy about the wonderful news!"
    )
    assert lede(text) == (
        "Shares plunged 20% in early trading. The company also announced layoffs."
    )
    neutral_title = "Company updates investors"
    assert scorer.score(neutral_title, None).label == "neutral"
    # The lede carries the news; the third, glowing sentence is not read.
    assert scorer.score(neutral_title, text) == scorer.score_text(
        "Company updates investors. Shares plunged 20% in early trading. "
        "The company also announced layoffs."
    )
    assert scorer.score(neutral_title, text).label == "negative"
    assert scorer.score(neutral_title, "") == scorer.score(neutral_title, None)
    assert lede("One sentence without an end") == "One sentence without an end"


def test_scores_are_deterministic(scorer: HeadlineScorer) -> None:
    title, text = "Apple beats estimates", "Revenue rose. Margins widened. Guidance held."
    first = scorer.score(title, text)
    assert all(scorer.score(title, text) == first for _ in range(5))
    assert HeadlineScorer().score(title, text) == first  # a fresh scorer agrees


def test_score_many_matches_score(scorer: HeadlineScorer) -> None:
    @dataclass(frozen=True)
    class Item:
        title: str
        text: str | None

    items = [Item(title, None) for title, _ in LABELLED_HEADLINES[:5]]
    items.append(Item("Bank faces lawsuit", "It was filed today. More to come."))
    assert scorer.score_many(items) == [scorer.score(i.title, i.text) for i in items]
    assert all(isinstance(s, Sentiment) for s in scorer.score_many(items))


def test_import_and_scoring_touch_no_network() -> None:
    # A fresh interpreter, so the import itself is covered: every way out is refused first.
    script = textwrap.dedent(
        """
        import socket

        def refuse(*args, **kwargs):
            raise AssertionError("network access attempted")

        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse

        from quote_pipeline.sentiment import HeadlineScorer

        scorer = HeadlineScorer()
        result = scorer.score("Apple beats estimates", "Shares surge. Analysts cheer.")
        print(result.label)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "positive"


def test_the_sandbox_feeds_tones_are_read_as_written(scorer: HeadlineScorer) -> None:
    # The sandbox's simulated news is written from templates of obvious tone, and says which
    # tone an article's template has: the scorer must read every template the same way.
    news = pytest.importorskip("quote_pipeline.sandbox.news")
    if not hasattr(news, "article_tone"):
        pytest.skip("the sandbox's news has no article_tone")
    from datetime import date, timedelta

    rows = [
        row
        for offset in range(30)
        for symbol in ("AAPL", "MSFT", "JPM", "XOM", "TSLA", "ZZZQ")
        for row in news.symbol_news(symbol, date(2025, 1, 1) + timedelta(days=offset))
    ]
    assert len(rows) > 100
    wrong = [
        (row["title"], scorer.score(row["title"], row["text"]))
        for row in rows
        if scorer.score(row["title"], row["text"]).label != news.article_tone(row["url"])
    ]
    assert wrong == []
