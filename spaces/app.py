"""A Gradio Space that samples synthetic rows from an hf_synth generator.

Run locally with ``pip install -e ".[space]" && python spaces/app.py``. The generator is read from
``HF_SYNTH_GENERATOR`` (a directory or Hub model id); without it, the Space fits the demo generator
on the bundled Adult sample once at start-up. Row counts and condition sizes are capped.
"""

from __future__ import annotations

import json
import os
import tempfile

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

try:
    import gradio as gr
except ImportError as err:  # the Space needs the [space] extra
    raise ImportError('the Space needs gradio: pip install "hf_synth[space]"') from err

from hf_synth import AutoGenerator, HFSynthError, LMGenerator, load_demo_dataset

MAX_ROWS = 1000
MAX_CONDITION_CHARS = 2000


def load_generator():
    source = os.environ.get("HF_SYNTH_GENERATOR")
    if source:
        return AutoGenerator.from_pretrained(source, revision=os.environ.get("HF_SYNTH_REVISION"))
    return LMGenerator(epochs=int(os.environ.get("HF_SYNTH_DEMO_EPOCHS", "15"))).fit(load_demo_dataset(), progress=False)


def sample_rows(generator, num_rows: float, seed: float, conditions: str):
    """Sample rows; returns (table, CSV file path, status line)."""
    try:
        n = int(num_rows)
        if not 1 <= n <= MAX_ROWS:
            raise HFSynthError(f"choose between 1 and {MAX_ROWS} rows")
        if len(conditions or "") > MAX_CONDITION_CHARS:
            raise HFSynthError(f"conditions are limited to {MAX_CONDITION_CHARS} characters")
        fixed = json.loads(conditions) if conditions and conditions.strip() else None
        if fixed is not None and not isinstance(fixed, dict):
            raise HFSynthError('conditions must be a JSON object such as {"sex": "Female"}')
        rows = generator.sample(n, conditions=fixed, seed=int(seed), progress=False)
    except (HFSynthError, json.JSONDecodeError, ValueError) as err:
        return None, None, f"error: {err}"
    path = os.path.join(tempfile.mkdtemp(prefix="hf_synth_space_"), "synthetic.csv")
    rows.to_csv(path, index=False)
    return rows.to_pandas(), path, str(generator.last_report)


def build_app(generator) -> "gr.Blocks":
    columns = ", ".join(generator.schema.columns)
    with gr.Blocks(title="hf_synth synthetic data") as app:
        gr.Markdown(f"# Synthetic rows from an hf_synth {type(generator).__name__}\n\nColumns: {columns}")
        with gr.Row():
            num_rows = gr.Number(value=20, minimum=1, maximum=MAX_ROWS, precision=0, label=f"rows (max {MAX_ROWS})")
            seed = gr.Number(value=0, precision=0, label="seed")
        conditions = gr.Textbox(label='conditions (JSON, optional), e.g. {"sex": "Female"}', lines=2)
        button = gr.Button("Sample", variant="primary")
        status = gr.Markdown()
        table = gr.Dataframe(label="synthetic rows", wrap=True)
        download = gr.File(label="CSV")
        button.click(lambda n, s, c: sample_rows(generator, n, s, c), [num_rows, seed, conditions],
                     [table, download, status], api_name="sample")
    return app


if __name__ == "__main__":
    build_app(load_generator()).launch()
