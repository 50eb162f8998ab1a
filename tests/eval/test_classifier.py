"""The MNIST domain classifier: determinism, caching, input handling and the accuracy metrics."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from arforge.data.mnist import mnist_uint8
from arforge.eval import classifier as clf


@pytest.fixture(scope="module")
def quick_model() -> clf.MNISTClassifier:
    return clf.train_mnist_classifier(seed=0, max_steps=30)


def test_training_is_deterministic_given_the_seed():
    a = clf.train_mnist_classifier(seed=0, max_steps=3).state_dict()
    b = clf.train_mnist_classifier(seed=0, max_steps=3).state_dict()
    c = clf.train_mnist_classifier(seed=1, max_steps=3).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_training_leaves_global_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    clf.train_mnist_classifier(seed=0, max_steps=1)
    assert torch.equal(torch.rand(3), expected) and torch.get_num_threads() == threads


def test_cached_once_and_rebuilt_when_damaged(tmp_path, monkeypatch, caplog):
    calls = []
    real_train = clf.train_mnist_classifier

    def quick(seed=0, **_):
        calls.append(seed)
        return real_train(seed=seed, max_steps=2)

    monkeypatch.setattr(clf, "train_mnist_classifier", quick)
    first = clf.load_or_train_mnist_classifier(tmp_path, seed=0)
    second = clf.load_or_train_mnist_classifier(tmp_path, seed=0)
    assert calls == [0] and not second.training
    assert all(torch.equal(v, second.state_dict()[k]) for k, v in first.state_dict().items())
    assert second.val_accuracy == pytest.approx(first.val_accuracy, abs=1e-6)
    (cached,) = tmp_path.glob("mnist_cnn-seed0-*.safetensors")
    cached.write_bytes(b"damaged")
    with caplog.at_level("WARNING"):
        clf.load_or_train_mnist_classifier(tmp_path, seed=0)
    assert calls == [0, 0] and "retraining" in caplog.text


def test_accuracy_metrics_and_input_forms(quick_model):
    images, labels = mnist_uint8("val", image_size=32, channels=3)
    images, labels = images[::10], labels[::10]
    preds = quick_model.predict(images)
    acc = clf.class_accuracy(quick_model, images, labels)
    assert acc == pytest.approx((preds == labels).mean()) and acc > 0.3  # 30 steps already learn something
    per_class = clf.per_class_accuracy(quick_model, images, labels)
    assert sorted(per_class) == list(range(10))
    assert np.mean(list(per_class.values())) == pytest.approx(acc)  # 5 images per class
    gray28 = images[:, 2:30, 2:30, :1]  # the raw 28x28 digit, one channel
    np.testing.assert_array_equal(quick_model.predict(gray28), preds)
    np.testing.assert_array_equal(quick_model.predict(torch.from_numpy(images[..., 0])), preds)
    with pytest.raises(ValueError, match="uint8"):
        clf.class_accuracy(quick_model, images.astype(np.float32), labels)
    with pytest.raises(ValueError, match="labels"):
        clf.class_accuracy(quick_model, images, labels[:-1])


@pytest.mark.slow
def test_full_training_reaches_98_percent_within_a_minute_or_so(tmp_path):
    start = time.perf_counter()
    model = clf.load_or_train_mnist_classifier(tmp_path, seed=0)
    seconds = time.perf_counter() - start
    print({"val_accuracy": model.val_accuracy, "train_seconds": seconds})
    assert model.val_accuracy >= 0.98
    assert seconds < 120
