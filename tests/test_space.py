"""The Gradio Space in spaces/app.py, driven through gradio_client against a local server."""

from __future__ import annotations

import importlib.util
import os

import pytest

gr = pytest.importorskip("gradio")

from hf_synth import LMGenerator, load_demo_dataset  # noqa: E402

APP = os.path.join(os.path.dirname(__file__), "..", "spaces", "app.py")


@pytest.fixture(scope="module")
def space():
    spec = importlib.util.spec_from_file_location("hf_synth_space", APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generator() -> LMGenerator:
    data = load_demo_dataset().select(range(80)).select_columns(["age", "sex", "income"])
    return LMGenerator(n_layer=1, n_embd=32, n_head=2, epochs=1, batch_size=32).fit(data, progress=False)


def test_sample_rows_and_caps(space, generator):
    table, path, status = space.sample_rows(generator, 5, 0, '{"sex": "Female"}')
    assert len(table) == 5 and set(table["sex"]) == {"Female"}
    assert os.path.isfile(path) and "produced 5" in status
    for rows, conditions, message in [
        (space.MAX_ROWS + 1, "", "between 1 and"),
        (3, "{not json", "error"),
        (3, '["sex"]', "JSON object"),
        (3, '{"colour": "red"}', "unknown column"),
        (3, "x" * (space.MAX_CONDITION_CHARS + 1), "limited"),
    ]:
        table, path, status = space.sample_rows(generator, rows, 0, conditions)
        assert table is None and path is None and message in status


def test_app_serves_samples(space, generator):
    from gradio_client import Client

    app = space.build_app(generator)
    app.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        client = Client(app.local_url, verbose=False)
        table, path, status = client.predict(4, 1, "", api_name="/sample")
        assert "produced 4" in status
        assert os.path.isfile(path)
    finally:
        app.close()
