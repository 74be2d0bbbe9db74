"""``hf-synth demo``: fit a generator on the bundled Adult sample and sample from it, offline."""

from __future__ import annotations

import os
import time

import pandas as pd

from .data import load_demo_dataset
from .errors import OutputExistsError

DEMO_COLUMNS = ["age", "workclass", "education", "occupation", "sex", "hours-per-week", "income"]


def run_demo(out: str = "hf-synth-demo", rows: int = 5, epochs: int | None = None, overwrite: bool = False,
             progress: bool = True) -> str:
    """Fit the default LMGenerator on 2,000 Adult rows (about a minute on 2 CPU cores), print
    samples and save the generator to ``out``. Returns ``out``."""
    from .generators.lm import LMGenerator

    if os.path.exists(out) and not overwrite:
        raise OutputExistsError(f"{out} exists; pass --overwrite to replace it")
    dataset = load_demo_dataset()
    print(f"hf_synth demo: fitting an LMGenerator on {dataset.num_rows} rows of UCI Adult "
          "(CC BY 4.0, bundled with hf_synth), offline")
    start = time.perf_counter()
    generator = LMGenerator(epochs=epochs or 15, patience=3).fit(dataset, progress=progress)
    print(f"fitted in {time.perf_counter() - start:.0f} s "
          f"(validation loss {generator.training_info['best_validation_loss']})\n")
    pd.set_option("display.width", 160)
    synthetic = generator.sample(rows, seed=0, progress=False)
    print(f"{rows} synthetic rows ({generator.last_report}):")
    print(synthetic.to_pandas()[DEMO_COLUMNS].to_string(index=False), "\n")
    women = generator.sample(rows, conditions={"sex": "Female", "income": ">50K"}, seed=1, progress=False)
    print(f"{rows} rows conditioned on sex=Female, income=>50K:")
    print(women.to_pandas()[DEMO_COLUMNS].to_string(index=False), "\n")
    generator.save_pretrained(out)
    print(f"saved the generator to {os.path.abspath(out)}")
    print(f"sample more with: hf-synth sample {out} -n 1000 --seed 0 --out synthetic.csv")
    return out
