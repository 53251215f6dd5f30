import hashlib

import numpy as np
import pytest

from benchbd.data.images import ARRAY_KEYS
from benchbd.data.synth_signs import FRAMES, GTSRB_TRAIN_COUNTS, NUM_CLASSES, VERSION, class_counts, generate_synth_signs

N_TRAIN, N_TEST = 430, 215
#: sha256 of the four arrays of generate_synth_signs(seed=0, n_train=430, n_test=215), version 1.
DEFAULT_DIGEST = "49cb1cc2b0f861157bc8bba3e070fa91e4912b5cff65f720ba4692edffadf5b9"


@pytest.fixture(scope="module")
def small() -> dict[str, np.ndarray]:
    return generate_synth_signs(seed=0, n_train=N_TRAIN, n_test=N_TEST)


def test_shapes_and_dtypes(small: dict[str, np.ndarray]) -> None:
    assert NUM_CLASSES == 43
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        assert small[f"x_{split}"].shape == (n, 32, 32, 3)
        assert small[f"x_{split}"].dtype == np.uint8
        assert small[f"y_{split}"].shape == (n,)
        assert small[f"y_{split}"].dtype == np.int64


def test_labels_cover_every_class(small: dict[str, np.ndarray]) -> None:
    for split in ("train", "test"):
        assert set(small[f"y_{split}"].tolist()) == set(range(NUM_CLASSES))


def test_labels_are_shuffled(small: dict[str, np.ndarray]) -> None:
    assert not np.all(np.diff(small["y_train"]) >= 0)


def test_same_seed_is_identical_and_other_seeds_differ(small: dict[str, np.ndarray]) -> None:
    again = generate_synth_signs(seed=0, n_train=N_TRAIN, n_test=N_TEST)
    for key in small:
        np.testing.assert_array_equal(small[key], again[key])
    other = generate_synth_signs(seed=1, n_train=N_TRAIN, n_test=N_TEST)
    assert not np.array_equal(small["x_train"], other["x_train"])
    assert not np.array_equal(small["y_train"], other["y_train"])


def test_train_and_test_differ(small: dict[str, np.ndarray]) -> None:
    assert not np.array_equal(small["x_train"][:N_TEST], small["x_test"])


def test_class_counts_follow_gtsrb_proportions() -> None:
    for n in (43, 215, 430, 2580, 8600):
        counts = class_counts(n)
        assert counts.sum() == n
        assert counts.min() >= min(5, n // NUM_CLASSES)
    counts = class_counts(8600)
    assert counts.max() >= 5 * counts.min()
    assert np.argmax(counts) == np.argmax(GTSRB_TRAIN_COUNTS)
    assert np.corrcoef(counts, GTSRB_TRAIN_COUNTS)[0, 1] > 0.99
    with pytest.raises(ValueError):
        class_counts(NUM_CLASSES - 1)


def test_generated_labels_match_class_counts(small: dict[str, np.ndarray]) -> None:
    np.testing.assert_array_equal(np.bincount(small["y_train"], minlength=NUM_CLASSES), class_counts(N_TRAIN))
    np.testing.assert_array_equal(np.bincount(small["y_test"], minlength=NUM_CLASSES), class_counts(N_TEST))


def test_images_are_varied(small: dict[str, np.ndarray]) -> None:
    x = small["x_train"].astype(np.float64)
    assert (x.std(axis=(1, 2, 3)) > 2).all()
    brightness = x.mean(axis=(1, 2, 3))
    assert brightness.min() < 50 < 120 < brightness.max()  # dark and bright images, like GTSRB


def test_background_border_does_not_reveal_the_class(small: dict[str, np.ndarray]) -> None:
    """A nearest-class-mean classifier on the mean colour of the 2-pixel border is near chance."""
    border = np.ones((32, 32), bool)
    border[2:-2, 2:-2] = False
    train = small["x_train"][:, border].mean(axis=1)
    test = small["x_test"][:, border].mean(axis=1)
    means = np.stack([train[small["y_train"] == c].mean(axis=0) for c in range(NUM_CLASSES)])
    predicted = np.argmin(((test[:, None] - means[None]) ** 2).sum(axis=2), axis=1)
    assert (predicted == small["y_test"]).mean() < 0.1



TRACK_FRAMES = 10


@pytest.fixture(scope="module")
def tracked() -> dict[str, np.ndarray]:
    return generate_synth_signs(seed=0, n_train=N_TRAIN, n_test=N_TEST, frames=TRACK_FRAMES)


def test_default_output_is_unchanged(small: dict[str, np.ndarray]) -> None:
    """Prepared caches are named by VERSION and published synth-signs tables depend on the arrays: a change to the
    default output must bump VERSION and this digest (taken from version 1, before tracks were added)."""
    assert FRAMES == 1 and VERSION == 1
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(small[k]).tobytes() for k in ARRAY_KEYS)).hexdigest()
    assert digest == DEFAULT_DIGEST


def test_training_split_is_tracks_of_one_sign(tracked: dict[str, np.ndarray]) -> None:
    """GTSRB's structure: every track one class, frames 0..len-1, each class's tracks of TRACK_FRAMES views but
    its last; the views of one track nearer to each other than to another track of their class; shuffled."""
    track, frame, y = tracked["train_track"], tracked["train_frame"], tracked["y_train"]
    x = tracked["x_train"].astype(np.float32)
    within, between = [], []
    for t in np.unique(track):
        views = np.flatnonzero(track == t)
        assert len(set(y[views].tolist())) == 1
        assert sorted(frame[views].tolist()) == list(range(len(views)))
        other = np.flatnonzero((y == y[views[0]]) & (track != t))
        if len(views) > 1 and len(other):
            within.append(np.abs(x[views[0]] - x[views[1]]).mean())
            between.append(np.abs(x[views[0]] - x[other[0]]).mean())
    for c in range(NUM_CLASSES):
        lengths = np.bincount(track[y == c])
        lengths = np.sort(lengths[lengths > 0])
        assert lengths.sum() == class_counts(N_TRAIN)[c] and (lengths[1:] == TRACK_FRAMES).all()
    assert np.median(within) < 0.5 * np.median(between)
    assert np.mean(np.diff(track) == 0) < 0.2


def test_views_of_a_track_differ(tracked: dict[str, np.ndarray]) -> None:
    track = tracked["train_track"]
    first = np.flatnonzero(track == track[np.argmax(np.bincount(track))])
    pairs = tracked["x_train"][first].astype(np.int16)
    assert all(np.abs(pairs[0] - pair).mean() > 1 for pair in pairs[1:])


def test_the_test_split_is_independent_signs_whatever_the_tracks(small: dict[str, np.ndarray], tracked: dict[str, np.ndarray]) -> None:
    np.testing.assert_array_equal(small["x_test"], tracked["x_test"])
    assert len(np.unique(small["train_track"])) == N_TRAIN and (small["train_frame"] == 0).all()
    with pytest.raises(ValueError, match="frames"):
        generate_synth_signs(seed=0, n_train=N_TRAIN, n_test=N_TEST, frames=0)
