"""A cheap reference for text classification: TF-IDF features and a logistic regression (scikit-learn), trained on
the run's training split and scored on the same test samples as every other report row. A teacher or student
under it has learned less from the texts than word counts do; the report shows the row so nobody has to guess."""
from __future__ import annotations

import numpy as np

NAME = "tfidf_logreg"  # its name among the report's references (and as gate.reference)


def _vectorizer():
    from sklearn.feature_extraction.text import TfidfVectorizer

    # Word unigrams and bigrams with sublinear term frequency: the usual strong TF-IDF baseline for short texts.
    return TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), lowercase=True)


def why_no_baseline(train_texts: list[str]) -> str:
    """Why the baseline cannot be fitted on these training texts ("" when it can): TF-IDF reads words of two or
    more letters or digits (scikit-learn's token_pattern), so texts of emoji, punctuation or 1-character words give
    it no vocabulary, and scikit-learn stops with "empty vocabulary"."""
    analyze = _vectorizer().build_analyzer()
    if any(analyze(text) for text in train_texts):
        return ""
    return (f"none of the {len(train_texts)} training texts has a word TF-IDF reads (two or more letters or digits; "
            "emoji, punctuation and 1-character words are not read)")


def tfidf_logreg_logits(train_texts: list[str], train_y: np.ndarray, texts: list[str], num_classes: int,
                        seed: int = 0) -> np.ndarray:
    """(len(texts), num_classes) log-probabilities; a class absent from the training split gets -1e30."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(_vectorizer(), LogisticRegression(max_iter=1000, random_state=seed))
    model.fit(list(train_texts), np.asarray(train_y))
    logits = np.full((len(texts), num_classes), -1e30, dtype=np.float64)  # far under any log-probability
    logits[:, model.classes_] = model.predict_log_proba(list(texts))
    return logits.astype(np.float32)
