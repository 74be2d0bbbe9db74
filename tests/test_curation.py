"""Curation steps: with Dataset.filter, through curate(), and after sampling."""

import json

import datasets
import pytest

from hf_synth import LMGenerator, load_demo_dataset
from hf_synth.curation import (
    CurationReport,
    DropCloseToTraining,
    DropDuplicates,
    DropInvalid,
    DropNearDuplicates,
    Threshold,
    curate,
)
from hf_synth.errors import HFSynthError
from hf_synth.schema import RecordSchema


@pytest.fixture(scope="module")
def adult() -> datasets.Dataset:
    return load_demo_dataset().select(range(300))


@pytest.fixture(scope="module")
def schema(adult) -> RecordSchema:
    return RecordSchema.from_dataset(adult)


def test_drop_invalid_works_with_dataset_filter(adult, schema):
    rows = adult.select(range(10)).to_list()
    rows[3]["sex"] = "Unknown"
    rows[7]["age"] = 1000
    data = datasets.Dataset.from_list(rows, features=adult.features)
    kept = data.filter(DropInvalid(schema), batched=True, batch_size=4)
    assert kept.num_rows == 8
    assert "Unknown" not in kept["sex"] and 1000 not in kept["age"]


def test_drop_duplicates_within_and_against_reference(adult):
    train = adult.select(range(50))
    rows = adult.select(range(100, 110)).to_list()
    rows = rows + [rows[0], rows[1]] + train.select([5, 6, 7]).to_list()  # 2 repeats, 3 copies of train
    curated, report = curate(rows, [DropDuplicates(reference=train)])
    assert curated.num_rows == 10
    assert report.input_rows == 15 and report.removed == 5
    keys = {json.dumps(r, sort_keys=True) for r in train.to_list()}
    assert not any(json.dumps(r, sort_keys=True) in keys for r in curated.to_list())
    # without within-set dedup the repeats stay
    curated, _ = curate(rows, [DropDuplicates(reference=train, within=False)])
    assert curated.num_rows == 12


def test_within_set_state_resets_between_runs(adult):
    rows = adult.select(range(5)).to_list() * 2
    step = DropDuplicates()
    first, _ = curate(rows, [step])
    second, _ = curate(rows, [step])
    assert first.num_rows == second.num_rows == 5


def test_near_duplicates_catch_edited_copies(adult):
    train = adult.select(range(100))
    edited = train.select(range(10)).to_list()
    for row in edited:
        row["hours-per-week"] = row["hours-per-week"] + 1  # one field changed: still a near copy
    fresh = adult.select(range(200, 210)).to_list()
    step = DropNearDuplicates(reference=train, threshold=0.7, within=False)
    flags = step.keep(edited + fresh)
    assert sum(flags[:10]) <= 1  # edited copies dropped
    assert sum(flags[10:]) >= 8  # other rows kept


def test_close_to_training_filter(adult):
    train = adult.select(range(200))
    copies = train.select(range(5)).to_list()
    fresh = load_demo_dataset().select(range(1000, 1100)).to_list()
    exact_only = DropCloseToTraining(train, min_distance=0.0)
    flags = exact_only.keep(copies + fresh)
    assert flags[:5] == [False] * 5
    fresh_keys = {json.dumps(r, sort_keys=True) for r in train.to_list()}
    expected_fresh = [json.dumps(r, sort_keys=True) not in fresh_keys for r in fresh]
    assert flags[5:] == expected_fresh
    # a quantile threshold is a positive distance learnt from train-to-train neighbours
    strict = DropCloseToTraining(train, quantile=0.5)
    assert strict.min_distance > 0
    assert sum(strict.keep(fresh)) < sum(exact_only.keep(fresh))


def test_threshold_on_column_and_function(adult):
    curated, report = curate(adult.select(range(100)), [Threshold("age", min=30, max=50)])
    assert all(30 <= a <= 50 for a in curated["age"])
    expected = sum(30 <= a <= 50 for a in adult.select(range(100))["age"])
    assert curated.num_rows == expected
    assert report.steps[0]["removed"] == 100 - expected
    long_hours = Threshold(lambda r: r["hours-per-week"], min=45, name="hours")
    assert long_hours.keep([{"hours-per-week": 40}, {"hours-per-week": 60}]) == [False, True]
    with pytest.raises(HFSynthError, match="no column"):
        Threshold("nope", min=1).keep([{"age": 3}])


def test_bad_step_arguments():
    with pytest.raises(HFSynthError, match="exactly one"):
        DropCloseToTraining(load_demo_dataset().select(range(20)))
    with pytest.raises(HFSynthError, match="needs min, max"):
        Threshold("age")
    with pytest.raises(HFSynthError, match="needs a reference"):
        DropDuplicates(within=False)
    with pytest.raises(HFSynthError, match="CurationStep"):
        curate([{"a": 1}], [lambda batch: [True]])


def test_report_is_json_ready():
    report = CurationReport(input_rows=10)
    report.add(DropDuplicates(), 3)
    assert report.to_dict() == {"input_rows": 10, "output_rows": 7, "removed": 3,
                                "steps": [{"step": "DropDuplicates", "reason": "repeats an earlier row", "removed": 3}]}
    assert "kept 7 of 10" in str(report)


TINY = dict(n_layer=1, n_embd=32, n_head=2, epochs=2, batch_size=32, sample_batch_size=64, dropout=0.0)


@pytest.fixture(scope="module")
def generator(adult) -> LMGenerator:
    return LMGenerator(**TINY).fit(adult, progress=False)


def test_sampling_with_curation_tops_up_rejected_rows(generator):
    # rows under 40 are rejected: they are sampled again until the sample is full
    young = Threshold("age", max=39)
    rows = generator.sample(60, seed=0, curation=[young], progress=False)
    assert rows.num_rows == 60
    assert max(rows["age"]) <= 39
    report = generator.last_curation_report
    assert report.output_rows == 60 and report.input_rows == 60 + report.removed
    assert report.removed > 0
    again = generator.sample(60, seed=0, curation=[young], progress=False)
    assert again.to_list() == rows.to_list()


def test_sampling_with_an_impossible_filter_returns_fewer_rows(generator, caplog):
    impossible = Threshold("age", min=1000)
    rows = generator.sample(10, seed=0, curation=[impossible], max_rounds=2, progress=False)
    assert rows.num_rows == 0
    assert generator.last_curation_report.removed == 20
    assert "rejected 10 of 10 rows" in caplog.text


def test_sampling_with_curation_keeps_conditions(generator):
    conditions = [{"sex": "Female"}] * 5 + [{"sex": "Male"}] * 5
    rows = generator.sample(conditions=conditions, seed=1, curation=[DropDuplicates()], progress=False)
    assert rows["sex"] == ["Female"] * 5 + ["Male"] * 5
    assert len({json.dumps(r, sort_keys=True) for r in rows.to_list()}) == 10


def test_near_duplicates_within_the_set(adult):
    rows = adult.select(range(20)).to_list()
    edited = [dict(r, **{"hours-per-week": r["hours-per-week"] + 1}) for r in rows[:5]]
    originals, _ = curate(rows, [DropNearDuplicates(threshold=0.7)])
    curated, report = curate(rows + edited, [DropNearDuplicates(threshold=0.7)])
    # the first occurrence is kept: the edited copies come last and go
    assert curated.to_list() == originals.to_list()
    assert report.steps[0]["removed"] == 25 - originals.num_rows
