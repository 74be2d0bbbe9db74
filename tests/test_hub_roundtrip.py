"""Hub round trips through the real clients, against the local Hub-compatible server (tests/hub_server.py).

Nothing is stubbed: ``push_to_hub`` / ``from_pretrained`` / ``ModelCard.load`` go through huggingface_hub,
``DatasetDict.push_to_hub`` / ``load_dataset`` through datasets, over HTTP to the ``hub`` fixture.
"""

from __future__ import annotations

import datasets
import pytest
import torch
from huggingface_hub import DatasetCard, HfApi, ModelCard, hf_hub_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from hf_synth import AutoGenerator, LMGenerator, load_demo_dataset
from hf_synth.errors import GeneratorLoadError, HFSynthError

REPO = "tester/adult-gen"
DATASET_REPO = "tester/synthetic-adult"


def fit(seed: int) -> LMGenerator:
    data = load_demo_dataset().select(range(60)).select_columns(["age", "sex", "income"])
    return LMGenerator(n_layer=1, n_embd=32, n_head=2, epochs=1, batch_size=32, seed=seed).fit(data, progress=False)


@pytest.fixture(scope="module")
def generator() -> LMGenerator:
    return fit(seed=0)


@pytest.fixture(scope="module")
def other_generator() -> LMGenerator:
    return fit(seed=1)


def samples(generator) -> list[dict]:
    return generator.sample(20, seed=3, progress=False).to_list()


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


# ------------------------------------------------------------------------------------------ the server
def test_hub_server_answers_with_the_hub_error_protocol(hub, tmp_path):
    """The errors huggingface_hub maps to its exception types, and auth, as the real Hub does them."""
    api = HfApi(token=hub.token)
    assert api.whoami()["name"] == hub.user
    with pytest.raises(HfHubHTTPError) as bad_token:
        HfApi(token="hf_wrong").whoami()
    assert bad_token.value.response.status_code == 401

    api.create_repo("tester/plain")
    api.create_repo("tester/plain", exist_ok=True)  # 409 -> fine
    with pytest.raises(HfHubHTTPError) as exists:
        api.create_repo("tester/plain")
    assert exists.value.response.status_code == 409
    api.upload_file(path_or_fileobj=b"hello", path_in_repo="dir/a.txt", repo_id="tester/plain")

    path = hf_hub_download("tester/plain", "dir/a.txt", cache_dir=tmp_path)
    assert open(path, "rb").read() == b"hello"
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download("tester/plain", "missing.txt", cache_dir=tmp_path)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("tester/plain", "dir/a.txt", revision="no-such-branch", cache_dir=tmp_path)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("tester/nothing-here", "dir/a.txt", cache_dir=tmp_path)

    api.create_repo("tester/secret", private=True)
    with pytest.raises(RepositoryNotFoundError) as hidden:
        HfApi().repo_info("tester/secret")
    assert hidden.value.response.status_code == 401
    assert api.repo_info("tester/secret").private is True


# ------------------------------------------------------------------------------------------ generators
def test_push_to_hub_then_from_pretrained_gives_the_same_generator(hub, generator):
    url = generator.push_to_hub(REPO, token=hub.token)
    sha = HfApi().repo_info(REPO).sha
    assert url == f"{hub.endpoint}/{REPO}/commit/{sha}"
    # the weights went through the LFS batch API + upload, like on the real Hub
    weights = [f for f in HfApi().list_repo_tree(REPO, recursive=True) if f.path.endswith(".safetensors")]
    assert weights and all(f.lfs is not None for f in weights)
    assert any(method == "PUT" and path.startswith("/_lfs_storage/") for method, path in hub.requests)

    loaded = AutoGenerator.from_pretrained(REPO)  # public repo: no token needed
    assert type(loaded) is LMGenerator
    assert_same_weights(loaded.model, generator.model)
    assert samples(loaded) == samples(generator)


def test_revision_pins_a_pushed_version(hub, generator, other_generator):
    assert samples(generator) != samples(other_generator)  # else the test below proves nothing
    api = HfApi(token=hub.token)
    generator.push_to_hub(REPO, token=hub.token)
    first = api.repo_info(REPO).sha
    api.create_tag(REPO, tag="v1")
    other_generator.push_to_hub(REPO, token=hub.token, commit_message="Retrain with seed 1")
    second = api.repo_info(REPO).sha
    assert second != first
    assert [c.commit_id for c in api.list_repo_commits(REPO)][:2] == [second, first]

    assert samples(AutoGenerator.from_pretrained(REPO, revision=first)) == samples(generator)
    assert samples(AutoGenerator.from_pretrained(REPO, revision="v1")) == samples(generator)
    latest = AutoGenerator.from_pretrained(REPO)
    assert samples(latest) == samples(other_generator)
    assert_same_weights(latest.model, other_generator.model)

    with pytest.raises(GeneratorLoadError, match=r"^the Hub repo 'tester/adult-gen' has no revision 'v9'$"):
        AutoGenerator.from_pretrained(REPO, revision="v9")


def test_model_card_is_a_valid_hub_card(hub, generator):
    generator.push_to_hub(REPO, token=hub.token)
    card = ModelCard.load(REPO)
    assert card.content == generator.model_card()
    assert card.data.library_name == "hf_synth"
    assert {"hf_synth", "synthetic-data", "tabular"} <= set(card.data.tags)
    assert "## Schema" in card.text
    for column in ("age", "sex", "income"):
        assert f"| `{column}` |" in card.text


def test_missing_repo_gives_a_clear_error(hub):
    with pytest.raises(GeneratorLoadError) as err:
        AutoGenerator.from_pretrained("tester/does-not-exist")
    assert str(err.value) == (
        "no Hub repo 'tester/does-not-exist', or no access to it (check the id, and pass a token for private repos)"
    )


def test_private_repo_needs_a_valid_token(hub, generator):
    generator.push_to_hub("tester/private-gen", private=True, token=hub.token)
    assert HfApi(token=hub.token).repo_info("tester/private-gen").private is True

    with pytest.raises(GeneratorLoadError, match="no Hub repo 'tester/private-gen', or no access to it") as anonymous:
        AutoGenerator.from_pretrained("tester/private-gen")
    with pytest.raises(GeneratorLoadError, match=r"the Hub rejected the token .*401 Unauthorized") as wrong:
        AutoGenerator.from_pretrained("tester/private-gen", token="hf_wrong")
    assert "\n" not in str(anonymous.value) + str(wrong.value)
    loaded = AutoGenerator.from_pretrained("tester/private-gen", token=hub.token)
    assert samples(loaded) == samples(generator)


@pytest.mark.parametrize("token, server_says", [
    ("hf_wrong", "Invalid credentials in Authorization header"),  # a bad token
    (None, "Invalid username or password"),  # no token at all
])
def test_push_with_bad_credentials_names_the_auth_problem(hub, generator, token, server_says):
    with pytest.raises(HFSynthError) as err:
        generator.push_to_hub("tester/not-created", token=token)
    message = str(err.value)
    assert message.startswith("cannot push to 'tester/not-created': the Hub rejected the credentials (401 Unauthorized")
    assert server_says in message and "\n" not in message
    assert not HfApi(token=hub.token).repo_exists("tester/not-created")


def test_push_to_another_namespace_is_forbidden(hub, generator):
    with pytest.raises(HFSynthError) as err:
        generator.push_to_hub("someone-else/gen", token=hub.token)
    assert str(err.value).startswith("cannot push to 'someone-else/gen': the token has no write access there (403")


# ------------------------------------------------------------------------------------------ datasets
@pytest.fixture(scope="module")
def synthetic_splits() -> datasets.DatasetDict:
    data = load_demo_dataset().select(range(60)).select_columns(["age", "sex", "income"])
    data = data.class_encode_column("income")
    return datasets.DatasetDict({"train": data.select(range(40)), "test": data.select(range(40, 60))})


def test_dataset_dict_push_to_hub_then_load_dataset(hub, synthetic_splits):
    assert isinstance(synthetic_splits["train"].features["income"], datasets.ClassLabel)
    synthetic_splits.push_to_hub(DATASET_REPO, token=hub.token)
    loaded = datasets.load_dataset(DATASET_REPO)
    assert set(loaded) == {"train", "test"}
    for split, expected in synthetic_splits.items():
        assert loaded[split].features == expected.features
        assert loaded[split].to_list() == expected.to_list()


def test_load_dataset_streaming_reads_the_pushed_rows(hub, synthetic_splits):
    synthetic_splits.push_to_hub(DATASET_REPO, token=hub.token)
    streamed = datasets.load_dataset(DATASET_REPO, streaming=True)
    for split, expected in synthetic_splits.items():
        assert streamed[split].features == expected.features
        assert list(streamed[split]) == expected.to_list()
    # streaming reads the parquet files through HfFileSystem with HTTP Range requests
    assert any(path.endswith(".parquet") for path, _ in hub.range_requests)


def test_push_to_hub_keeps_an_existing_dataset_card(hub, synthetic_splits):
    api = HfApi(token=hub.token)
    api.create_repo(DATASET_REPO, repo_type="dataset")
    text = "# Synthetic adult census\n\nSampled with hf_synth; no real person is in this data.\n"
    api.upload_file(path_or_fileobj=f"---\nlicense: mit\n---\n{text}".encode(), path_in_repo="README.md",
                    repo_id=DATASET_REPO, repo_type="dataset")
    synthetic_splits.push_to_hub(DATASET_REPO, token=hub.token)

    card = DatasetCard.load(DATASET_REPO)
    assert card.text.strip() == text.strip()
    assert card.data.license == "mit"
    [config] = card.data.configs
    assert {f["split"] for f in config["data_files"]} == {"train", "test"}
    assert "\nconfigs:\n" in card.content.split("---")[1]
    assert datasets.load_dataset(DATASET_REPO, split="test").to_list() == synthetic_splits["test"].to_list()
