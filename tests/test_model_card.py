"""The model card's bookkeeping: which subphases a model was trained on (from its metadata)."""

import json

from mars_cloudmask.benchmarks.model_card import trained_subphases


def test_trained_subphases_come_from_the_split_metadata():
    split = {
        "train": ["P01day01", "P01day02"],
        "val": ["P01day16"],
        "test": ["P01day18"],
        "reference": ["P07_day03", "P07_day09", "P14_day01"],
    }
    assert trained_subphases({"split": json.dumps(split)}) == {"P01", "P07", "P14"}


def test_validation_and_test_days_do_not_count_as_trained_on():
    split = {"train": [], "val": ["P03day01"], "test": ["P05day02"], "reference": []}
    assert trained_subphases({"split": json.dumps(split)}) == set()


def test_a_model_without_split_metadata_has_no_trained_subphases():
    assert trained_subphases({}) == set()
    assert trained_subphases({"split": "not json"}) == set()
