"""Linear classifiers (scikit-learn's LogisticRegression) made quick for one message at a time.

Our NLU components score one customer message per call. scikit-learn is
built for batches: for a single row its overheads (scipy matrix building,
a transposed copy of the weights) cost far more than the arithmetic.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.utils.extmath import softmax

Model = TypeVar("Model")


def laid_out_for_sparse_rows(model: Model) -> Model:
    """``model`` with its linear classifiers' weights stored column-major.

    scikit-learn scores a sparse row as ``row @ coef_.T``; with ``coef_`` as
    trained (row-major), scipy copies the whole transposed matrix (features by
    classes, megabytes) on every call: 3.6 ms per message, a tenth of Rasa's
    CPU per message in `make bench`. Column-major, ``coef_.T`` is already laid
    out for it and the product takes 0.04 ms. The values are the same.
    """
    for value in vars(model).values() if hasattr(model, "__dict__") else ():
        if isinstance(getattr(value, "coef_", None), np.ndarray):
            value.coef_ = np.asfortranarray(value.coef_)
    return model


def linear_probabilities(classifier: LogisticRegression, decision: np.ndarray) -> np.ndarray:
    """``classifier.predict_proba`` for rows whose decision values (``X @ coef_.T +
    intercept_``) are already computed, by the same rule scikit-learn 1.1 uses."""
    decision = np.atleast_2d(decision)
    one_vs_rest = classifier.multi_class in ("ovr", "warn") or (
        classifier.multi_class == "auto"
        and (classifier.classes_.size <= 2 or classifier.solver == "liblinear"))
    if not one_vs_rest:
        return softmax(decision.copy())
    if decision.shape[1] == 1:  # binary: one column of scores for the positive class
        positive = 1.0 / (1.0 + np.exp(-decision[:, 0]))
        return np.column_stack([1.0 - positive, positive])
    probabilities = 1.0 / (1.0 + np.exp(-decision))
    return probabilities / probabilities.sum(axis=1, keepdims=True)
