"""Publish sampled splits as a plain Hub dataset repo: ``datasets.load_dataset("<user>/<name>")``
then works anywhere, with no hf_synth installed.

The repo gets a dataset card (which generator and revision, the seed and split sizes, the
generator's evaluation when it has one) and Parquet files written by `datasets`' own
``push_to_hub``, which adds its ``configs`` / ``dataset_info`` metadata to the card.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import TYPE_CHECKING, Any

from .hub import push_error, render_model_card
from .streams import sample_splits

if TYPE_CHECKING:
    import datasets

    from .generators.base import BaseGenerator


def push_synthetic_dataset(generator: "BaseGenerator", repo_id: str, *, num_rows: Any, seed: int | None,
                           conditions: Any, batch_size: int | None, private: bool | None, token: str | bool | None,
                           commit_message: str, options: dict[str, Any]) -> str:
    """See :meth:`BaseGenerator.push_synthetic_dataset`."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    generator._check_fitted()
    seed = generator.config.seed if seed is None else seed
    splits = sample_splits(generator, num_rows, seed=seed, conditions=conditions, batch_size=batch_size,
                           options=options)
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        # the card first: datasets' push_to_hub keeps an existing card and adds its metadata to it
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as f:
                f.write(dataset_card(generator, splits, seed=seed, conditions=conditions, repo_id=repo_id))
            if generator.evaluation is not None:
                os.makedirs(os.path.join(folder, "evaluation"))
                generator.evaluation.write_files(os.path.join(folder, "evaluation"))
            api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="dataset",
                              commit_message=f"{commit_message}: dataset card")
        info = splits.push_to_hub(repo_id, private=private, token=token, commit_message=commit_message)
    except HfHubHTTPError as err:
        raise push_error(repo_id, err) from None
    return getattr(info, "commit_url", str(info))


def dataset_card(generator: "BaseGenerator", splits: "datasets.DatasetDict", *, seed: int, conditions: Any,
                 repo_id: str) -> str:
    """The README.md of a published synthetic dataset."""
    from .model_card import evaluation_section

    source = generator.source or {}
    hub_id = source.get("path_or_repo_id") if source.get("commit") else None
    training = generator.training_info
    return render_model_card(
        "dataset_card.md",
        repo_id=repo_id,
        generator_class=type(generator).__name__,
        generator_id=hub_id,
        generator_commit=source.get("commit"),
        generator_fingerprint=source.get("fingerprint") or training.get("fingerprint", ""),
        training_dataset=training.get("dataset"),
        training_rows=training.get("rows"),
        seed=seed,
        conditions=conditions,
        conditions_literal=json.dumps(conditions, ensure_ascii=False) if conditions else "",
        splits=[(name, split.num_rows) for name, split in splits.items()],
        total_rows=sum(split.num_rows for split in splits.values()),
        size_category=_size_category(sum(split.num_rows for split in splits.values())),
        columns=generator.schema.columns,
        evaluation_section=evaluation_section(generator.evaluation),
    )


def _size_category(rows: int) -> str:
    """The Hub's ``size_categories`` tag for a row count."""
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if rows < limit:
            return label
    return "10M<n<100M"
