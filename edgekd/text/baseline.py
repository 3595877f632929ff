"""A cheap reference for text classification: TF-IDF features and a logistic regression (scikit-learn), trained on
the run's training split and scored on the same test samples as every other report row. A teacher or student
under it has learned less from the texts than word counts do; the report shows the row so nobody has to guess."""
from __future__ import annotations

import numpy as np

NAME = "tfidf_logreg"  # its name among the report's references (and as gate.reference)


def tfidf_logreg_logits(train_texts: list[str], train_y: np.ndarray, texts: list[str], num_classes: int,
                        seed: int = 0) -> np.ndarray:
    """(len(texts), num_classes) log-probabilities; a class absent from the training split gets -1e30."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    # Word unigrams and bigrams with sublinear term frequency: the usual strong TF-IDF baseline for short texts.
    model = make_pipeline(TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), lowercase=True),
                          LogisticRegression(max_iter=1000, random_state=seed))
    model.fit(list(train_texts), np.asarray(train_y))
    logits = np.full((len(texts), num_classes), -1e30, dtype=np.float64)  # far under any log-probability
    logits[:, model.classes_] = model.predict_log_proba(list(texts))
    return logits.astype(np.float32)
