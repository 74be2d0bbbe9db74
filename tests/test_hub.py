"""Generators with an evaluation report on the Hub, through the real huggingface_hub client and the
local Hub-compatible server (tests/hub_server.py); and the offline error."""

from __future__ import annotations

import pytest
from huggingface_hub import HfApi, ModelCard

from hf_synth import AutoGenerator, LMGenerator, load_demo_dataset
from hf_synth.errors import GeneratorLoadError

COLUMNS = ["age", "sex", "income"]


@pytest.fixture(scope="module")
def generator() -> LMGenerator:
    data = load_demo_dataset().select(range(60)).select_columns(COLUMNS)
    return LMGenerator(n_layer=1, n_embd=32, n_head=2, epochs=1, batch_size=32).fit(data, progress=False)


def test_offline_hub_id_gives_clear_error():
    with pytest.raises(GeneratorLoadError, match="cannot be reached|no Hub repo"):
        AutoGenerator.from_pretrained("someone/not-cached-generator")


def test_evaluated_generator_pushes_its_report_and_card(hub, generator):
    real = load_demo_dataset().select(range(60)).select_columns(COLUMNS)
    holdout = load_demo_dataset().select(range(60, 120)).select_columns(COLUMNS)
    report = generator.evaluate(real, holdout=holdout, target="income", seed=0,
                                metrics=["fidelity", "utility", "privacy"], progress=False)
    assert report["rows"]["synthetic"] == 60
    try:
        generator.push_to_hub("tester/adult", token=hub.token)
    finally:
        generator.evaluation = None
    files = set(HfApi().list_repo_files("tester/adult"))
    assert {f"evaluation/{name}" for name in ("report.json", "report.md", "marginals.png", "pair_trends.png",
                                              "dcr.png")} <= files
    card = ModelCard.load("tester/adult").text
    assert "## Evaluation" in card and "![Distance to the closest training record](evaluation/dcr.png)" in card
    assert f"| column shape error | {report['shape_error']:.2f} % | 0 % |" in card
    assert 'AutoGenerator.from_pretrained("tester/adult")' in card  # the card names the repo it was pushed to
    loaded = AutoGenerator.from_pretrained("tester/adult")
    assert loaded.evaluation.to_dict() == report.to_dict()
    assert loaded.evaluation.figures == report.figures
    assert loaded.source["commit"] == HfApi().repo_info("tester/adult").sha == generator.source["commit"]
