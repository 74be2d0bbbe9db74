"""Test configuration: offline, one CPU thread, a private Hugging Face cache."""

import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="hf_synth_tests_hf_home_")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

import sys  # noqa: E402

# shared helpers (tests/record_strategies.py) import the same way in any pytest import mode
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from hub_server import hub  # noqa: E402,F401  (the `hub` fixture: a local Hub-compatible server)
