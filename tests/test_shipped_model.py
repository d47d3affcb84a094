"""The checkpoint shipped inside the package: loads offline, deterministic, sensible."""

from __future__ import annotations

import os

from selfheal.model.backup import TfidfBackup
from selfheal.model.checkpoint import shipped_checkpoint


def test_loads_offline_and_is_deterministic(shipped_classifier):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    texts = ["An absolute joy from start to finish.", "A tedious, joyless slog."]
    first = shipped_classifier.predict(texts)
    second = shipped_classifier.predict(texts)
    assert first == second
    assert [p.label for p in first] == ["Positive", "Negative"]
    assert all(p.confidence > 0.75 for p in first)


def test_temperature_is_fitted_and_used(shipped_classifier):
    t = shipped_classifier.temperature
    assert t > 0 and t != 1.0
    logits = shipped_classifier.logits(["It was fine."])
    scaled = shipped_classifier.predict_proba(["It was fine."])
    from selfheal.model.calibrate import softmax

    assert abs(scaled[0, 1] - softmax(logits, t)[0, 1]) < 1e-9


def test_shipped_backup_loads_and_predicts():
    backup = TfidfBackup.load(shipped_checkpoint())
    probs = backup.predict_proba(["a masterpiece, beautiful and moving", "boring, dull and stupid"])
    assert probs.shape == (2, 2)
    assert probs[0, 1] > 0.5 > probs[1, 1]


def test_backup_save_round_trips_and_is_byte_reproducible(tmp_path, monkeypatch):
    import time

    import numpy as np

    backup = TfidfBackup.load(shipped_checkpoint())
    texts = ["a masterpiece, beautiful and moving", "boring, dull and stupid", "It was fine."]
    first = backup.save(tmp_path).read_bytes()
    monkeypatch.setattr(time, "time", lambda: 2_000_000_000.0)  # a later clock: same bytes
    assert backup.save(tmp_path).read_bytes() == first
    np.testing.assert_allclose(TfidfBackup.load(tmp_path).predict_proba(texts), backup.predict_proba(texts))


def test_shipped_checkpoint_is_small():
    size = sum(p.stat().st_size for p in shipped_checkpoint().iterdir())
    assert size < 8_000_000


def test_backup_predicts_as_scikit_learn_does_without_importing_it():
    """The TF-IDF backup's numpy arithmetic gives scikit-learn's probabilities (every test text
    and a few odd ones), and loading it and predicting imports no scikit-learn."""
    import subprocess
    import sys

    import numpy as np

    from conftest import process_env, sklearn_tfidf
    from selfheal.data import prepare_splits

    texts = list(prepare_splits("rotten_tomatoes", 0.1, 0.1, 42)["test"]["text"])
    texts += ["", "!!!", "ÉTÉ Été été", "a b c", "Don't  stop_me now__", "x" * 2000, "不好看 bad bad"]
    ours = TfidfBackup.load(shipped_checkpoint()).predict_proba(texts)
    np.testing.assert_allclose(ours, sklearn_tfidf(shipped_checkpoint()).predict_proba(texts), atol=1e-12)
    code = (
        "import sys; from selfheal.model.backup import TfidfBackup; "
        "from selfheal.model.checkpoint import shipped_checkpoint; "
        "TfidfBackup.load(shipped_checkpoint()).predict_proba(['fine']); "
        "print('sklearn' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=process_env())
    assert done.stdout.strip() == "False", done.stderr
