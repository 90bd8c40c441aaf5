"""Named cases of the defaults suite: where an automatic choice used to change the model.

Each case fits sk_gpusgd and scikit-learn with the same arguments (defaults
otherwise) on a small problem and reports one number for each, with what
"good" means for it: held-in or held-out accuracy, R^2, the largest weight,
the relative distance to an exact optimum, or the distance between the models
fitted on dense and CSR copies of the same X. None is downloaded; all run in
seconds, in every mode of ``benchmarks/defaults_suite.py`` (``--cases-only``
runs them alone).
"""

from __future__ import annotations

import warnings

import numpy as np


def _quiet():
    from sklearn.exceptions import ConvergenceWarning

    context = warnings.catch_warnings()
    context.__enter__()
    warnings.simplefilter("ignore", ConvergenceWarning)
    return context


# ------------------------------------------------------------ the model class
def constant_column():
    rng = np.random.RandomState(0)
    x = rng.randn(2000)
    return np.c_[x, np.full(2000, 3.0)], (x > 1).astype(int)


def one_hot():
    rng = np.random.RandomState(1)
    n = 2000
    first, second = rng.randint(0, 4, n), rng.randint(0, 3, n)
    X = np.c_[np.eye(4)[first], np.eye(3)[second]]
    score = np.array([0.5, 1.0, 1.5, 2.5])[first] + np.array([0.0, 0.5, 1.0])[second]
    return X, (score + 0.3 * rng.randn(n) > 2.2).astype(int)


def no_intercept_case(make):
    from sklearn.linear_model import LogisticRegression, SGDClassifier

    from sk_gpusgd import GPUSGDClassifier

    X, y = make()
    params = dict(loss="log_loss", fit_intercept=False, random_state=0)
    exact = LogisticRegression(fit_intercept=False).fit(X, y).score(X, y)
    return {
        "metric": "held-in accuracy",
        "better": "higher",
        "ours": GPUSGDClassifier(**params).fit(X, y).score(X, y),
        "sklearn": SGDClassifier(**params).fit(X, y).score(X, y),
        "reference": f"LogisticRegression(fit_intercept=False) {exact:.4f}",
    }


def one_row_stream_case(fit_intercept: bool):
    from sklearn.linear_model import SGDClassifier

    from sk_gpusgd import GPUSGDClassifier

    rng = np.random.RandomState(0)
    X = rng.randn(4000, 2)
    y = (X @ [1.0, -2.0] > 0).astype(int)
    models = [
        GPUSGDClassifier(fit_intercept=fit_intercept, random_state=0),
        SGDClassifier(fit_intercept=fit_intercept, random_state=0),
    ]
    scores = []
    for model in models:
        try:
            for i in range(1000):
                model.partial_fit(X[i : i + 1], y[i : i + 1], classes=[0, 1])
            scores.append(model.score(X[1000:], y[1000:]))
        except ValueError:  # the divergence of a one-row standardisation
            scores.append(float("nan"))
    return {
        "metric": "held-out accuracy",
        "better": "higher",
        "ours": scores[0],
        "sklearn": scores[1],
    }


# ------------------------------------------------------------ the L2 clamp
def huge_alpha_case(batch_size, weightless_last_row: bool):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import SGDClassifier

    from sk_gpusgd import GPUSGDClassifier

    X, y = load_iris(return_X_y=True)
    weights = np.ones(len(y))
    if weightless_last_row:
        weights[-1] = 0.0
    params = dict(
        alpha=1e5, learning_rate="constant", eta0=0.1, shuffle=False, tol=None, max_iter=6
    )
    ours = GPUSGDClassifier(batch_size=batch_size, **params).fit(X, y, sample_weight=weights)
    theirs = SGDClassifier(**params).fit(X, y, sample_weight=weights)
    return {
        "metric": "largest abs(coef_)",
        "better": "as sklearn",
        "ours": float(np.abs(ours.coef_).max()),
        "sklearn": float(np.abs(theirs.coef_).max()),
    }


# ------------------------------------------------------------ the automatic average
def average_case(max_iter: int):
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.preprocessing import StandardScaler

    from sk_gpusgd import GPUSGDClassifier

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    alpha = 0.01
    exact = LogisticRegression(C=1.0 / (alpha * len(y)), tol=1e-12, max_iter=10_000).fit(X, y)
    optimum = np.r_[exact.coef_.ravel(), exact.intercept_]

    def distance(model):
        fitted = np.r_[model.coef_.ravel(), model.intercept_]
        return float(np.linalg.norm(fitted - optimum) / np.linalg.norm(optimum))

    params = dict(loss="log_loss", alpha=alpha, max_iter=max_iter, tol=None, random_state=0)
    return {
        "metric": "distance to the optimum",
        "better": "lower",
        "ours": distance(GPUSGDClassifier(**params).fit(X, y)),
        "sklearn": distance(SGDClassifier(**params).fit(X, y)),
    }


# ------------------------------------------------------------ regression losses
def regression_case(X, y, **params):
    from sklearn.linear_model import SGDRegressor

    from sk_gpusgd import GPUSGDRegressor

    scores = []
    for model in (
        GPUSGDRegressor(random_state=0, **params),
        SGDRegressor(random_state=0, **params),
    ):
        try:
            scores.append(float(model.fit(X, y).score(X, y)))
        except ValueError:
            scores.append(float("nan"))
    return {"metric": "R^2 (held-in)", "better": "higher", "ours": scores[0], "sklearn": scores[1]}


def _line():
    x = np.linspace(-5, 5, 100)[:, None]
    return x, 0.5 * x[:, 0]


# ------------------------------------------------------------ storage
def storage_case(loss: str):
    import scipy.sparse as sp
    from sklearn.linear_model import SGDClassifier, SGDRegressor

    from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor

    rng = np.random.RandomState(0)
    X = rng.randn(400, 30) * (rng.rand(400, 30) < 0.2)
    score = X @ rng.randn(30)
    classify = loss in ("hinge", "log_loss")
    y = (score > 0).astype(int) if classify else score
    params = dict(loss=loss, random_state=0, max_iter=5, tol=None, fit_intercept=False)
    ours_cls, theirs_cls = (GPUSGDClassifier, SGDClassifier) if classify else (
        GPUSGDRegressor, SGDRegressor
    )  # fmt: skip
    distances = []
    for cls in (ours_cls, theirs_cls):
        dense = cls(**params).fit(X, y).coef_
        csr = cls(**params).fit(sp.csr_matrix(X), y).coef_
        distances.append(float(np.abs(np.ravel(dense) - np.ravel(csr)).max()))
    return {
        "metric": "largest abs(coef_ dense - coef_ CSR)",
        "better": "lower",
        "ours": distances[0],
        "sklearn": distances[1],
    }


# ------------------------------------------------------------ small sparse text
def topic_texts(n_docs=1000, n_topics=5, n_words=20_000, n_bigrams=20_000, seed=0):
    """Tf-idf of 1- and 2-gram-like features of documents drawn from topics.

    Every topic has its own Zipf(1.05) vocabulary (a random order of the same
    frequencies); a document of about 80 words (Poisson) draws 15 % of its
    words from its topic and the rest from a shared Zipf background; its
    bigrams (consecutive words) are hashed into ``n_bigrams`` more columns.
    Raw counts times smoothed idf, rows scaled to unit l2 norm (scikit-learn's
    ``TfidfVectorizer`` defaults). Returns CSR X and the topics.
    """
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    zipf = np.arange(1, n_words + 1, dtype=np.float64) ** -1.05
    background = zipf / zipf.sum()
    vocabularies = []
    for _ in range(n_topics):
        topic = np.empty(n_words)
        topic[rng.permutation(n_words)] = background
        vocabularies.append(topic)
    y = rng.integers(0, n_topics, n_docs)
    rows, columns = [], []
    for i in range(n_docs):
        length = max(5, int(rng.poisson(80)))
        from_topic = rng.random(length) < 0.15
        words = np.where(
            from_topic,
            rng.choice(n_words, length, p=vocabularies[y[i]]),
            rng.choice(n_words, length, p=background),
        )
        bigrams = n_words + (words[:-1] * 1_000_003 + words[1:]) % n_bigrams
        tokens = np.r_[words, bigrams]
        rows.append(np.full(tokens.size, i))
        columns.append(tokens)
    rows, columns = np.concatenate(rows), np.concatenate(columns)
    X = sp.csr_matrix((np.ones(rows.size), (rows, columns)), shape=(n_docs, n_words + n_bigrams))
    X.sum_duplicates()
    document_frequency = np.bincount(X.indices, minlength=X.shape[1])
    X.data *= (np.log((1.0 + n_docs) / (1.0 + document_frequency)) + 1.0)[X.indices]
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    return (sp.diags(1.0 / np.maximum(norms, 1e-12)) @ X).tocsr(), y


def text_case(measure: str):
    """The gallery's semi-supervised newsgroups set-up on :func:`topic_texts`, 3 splits."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import f1_score, log_loss
    from sklearn.model_selection import train_test_split
    from sklearn.semi_supervised import SelfTrainingClassifier

    from sk_gpusgd import GPUSGDClassifier

    X, y = topic_texts()
    values = {"ours": [], "sklearn": []}
    for split in range(3):
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=0.3, random_state=split, stratify=y
        )
        labelled = np.random.RandomState(split).rand(len(y_train)) < 0.2
        partial = np.where(labelled, y_train, -1)
        for label, cls in (("ours", GPUSGDClassifier), ("sklearn", SGDClassifier)):

            def make(cls=cls):
                return cls(alpha=1e-5, loss="log_loss", random_state=0)

            if measure == "self-training micro-F1":
                model = SelfTrainingClassifier(make(), threshold=0.75).fit(X_train, partial)
                values[label].append(f1_score(y_test, model.predict(X_test), average="micro"))
                continue
            model = make().fit(X_train[labelled], y_train[labelled])
            if measure == "mean top probability, unlabelled rows":
                values[label].append(model.predict_proba(X_train[~labelled]).max(axis=1).mean())
            else:
                probabilities = model.predict_proba(X_test)
                values[label].append(log_loss(y_test, probabilities, labels=model.classes_))
    better = "lower" if measure == "held-out log loss" else "higher"
    return {
        "metric": measure,
        "better": better,
        "ours": float(np.mean(values["ours"])),
        "sklearn": float(np.mean(values["sklearn"])),
    }


def cases():
    """``(name, function)`` of every case."""
    from sklearn.datasets import make_regression

    listed = [
        ("no intercept: constant column [x, 3.0]", lambda: no_intercept_case(constant_column)),
        ("no intercept: two one-hot blocks", lambda: no_intercept_case(one_hot)),
        ("1,000 one-row partial_fit calls, no intercept", lambda: one_row_stream_case(False)),
        ("1,000 one-row partial_fit calls", lambda: one_row_stream_case(True)),
        ("iris, alpha=1e5, batch_size='auto'", lambda: huge_alpha_case("auto", False)),
        ("iris, alpha=1e5, batch_size=8, last row weightless", lambda: huge_alpha_case(8, True)),
        ("iris, alpha=1e5, batch_size=32, last row weightless", lambda: huge_alpha_case(32, True)),
        ("breast_cancer log_loss alpha=0.01, 100 epochs", lambda: average_case(100)),
        ("breast_cancer log_loss alpha=0.01, 300 epochs", lambda: average_case(300)),
    ]
    line_x, line_y = _line()
    for loss, epsilons in (
        ("huber", (0.1, 1.0)),
        ("epsilon_insensitive", (0.01, 0.1)),
        ("squared_epsilon_insensitive", (0.01, 0.1)),
    ):
        for epsilon in epsilons:
            for fit_intercept, shift in ((False, 0.0), (True, 1.0)):
                for max_iter in (20, 1000):
                    name = f"line, {loss} epsilon={epsilon}, alpha=0.1, max_iter={max_iter}" + (
                        "" if fit_intercept else ", no intercept"
                    )
                    params = dict(
                        loss=loss,
                        epsilon=epsilon,
                        alpha=0.1,
                        max_iter=max_iter,
                        fit_intercept=fit_intercept,
                    )
                    listed.append(
                        (
                            name,
                            lambda p=params, s=shift: regression_case(line_x, line_y + s, **p),
                        )
                    )
    listed.append(
        (
            "line, squared_error, alpha=0.1, max_iter=20",
            lambda: regression_case(line_x, line_y, loss="squared_error", alpha=0.1, max_iter=20),
        )
    )
    Xr, yr = make_regression(2000, 10, noise=5, random_state=0)
    for loss in ("squared_error", "huber", "epsilon_insensitive", "squared_epsilon_insensitive"):
        listed.append(
            (f"make_regression(2000, 10), {loss}", lambda r=loss: regression_case(Xr, yr, loss=r))
        )
    for measure in (
        "mean top probability, unlabelled rows",
        "held-out log loss",
        "self-training micro-F1",
    ):
        listed.append(
            (
                "topic tf-idf, 700 x 40,000, 20 % labelled, log_loss alpha=1e-5",
                lambda m=measure: text_case(m),
            )
        )
    for loss in ("hinge", "log_loss", "squared_error", "huber"):
        listed.append(
            (f"400 x 30, 80% zeros, dense vs CSR, {loss}", lambda r=loss: storage_case(r))
        )
    return listed


def run_cases() -> list[dict]:
    """Every case's record: name, metric, ours, sklearn (and a reference where there is one)."""
    records = []
    context = _quiet()
    try:
        for name, function in cases():
            with np.errstate(all="ignore"):
                records.append({"name": name, **function()})
    finally:
        context.__exit__(None, None, None)
    return records


def cases_markdown(records: list[dict]) -> str:
    """The cases as a Markdown table."""
    lines = [
        "| case | metric | ours | scikit-learn | better | reference |",
        "|---|---|---|---|---|---|",
    ]
    for record in records:
        lines.append(
            f"| {record['name']} | {record['metric']} | {record['ours']:.4g} | "
            f"{record['sklearn']:.4g} | {record['better']} | {record.get('reference', '')} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    found = run_cases()
    print(cases_markdown(found))
