"""The frozen MiniLM text encoder against states recorded from `transformers`."""

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from filmstrip.text.encoder import MAX_TOKENS, TextEncoder, mean_pool

REFERENCE = Path(__file__).parent / "data" / "minilm_reference.safetensors"


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder()


def test_matches_transformers_reference(encoder):
    with safe_open(str(REFERENCE), "pt") as f:
        meta = f.metadata()
        prompts = [meta[f"prompt_{i}"] for i in range(3)]
        ref_states = [f.get_tensor(f"states_{i}") for i in range(3)]
        ref_ids = [f.get_tensor(f"ids_{i}").tolist() for i in range(3)]
    states, mask = encoder.encode(prompts)
    for i in range(3):
        assert encoder.tokenize(prompts[i]) == ref_ids[i]
        n = len(ref_ids[i])
        assert mask[i].sum() == n
        torch.testing.assert_close(states[i, :n], ref_states[i], rtol=0, atol=1e-4)
        assert torch.all(states[i, n:] == 0)


def test_embeddings_separate_meanings(encoder):
    s, m = encoder.encode(
        ["a red circle moves to the right", "a red circle moving right", "a blue square moves up"]
    )
    e = mean_pool(s, m)
    assert float(e[0] @ e[1]) > float(e[0] @ e[2])


def test_long_prompts_are_cut_with_a_warning(encoder):
    prompt = "a red circle moves to the right and " * 60
    with pytest.warns(UserWarning, match="at most 256"):
        ids = encoder.tokenize(prompt)
    assert len(ids) == MAX_TOKENS and ids[-1] == 102  # still ends with [SEP]


def test_cache_returns_identical_states(encoder):
    a, _ = encoder.encode(["a green triangle moves down"])
    b, _ = encoder.encode(["a green triangle moves down"])
    assert torch.equal(a, b)


def test_states_do_not_depend_on_batch_mates(encoder):
    prompt = "a pink circle moves left"
    encoder.forget()
    alone, _ = encoder.encode([prompt])
    encoder.forget()
    batched, mask = encoder.encode(
        ["a large white square and a small orange triangle drift apart", prompt, ""]
    )
    n = alone.shape[1]
    assert mask[1].sum() == n
    torch.testing.assert_close(batched[1, :n], alone[0], rtol=0, atol=1e-5)


def test_the_weights_may_come_from_a_folder_the_user_names(tmp_path, monkeypatch):
    """FILMSTRIP_TEXT_ENCODER points at a copy of the MiniLM files (a machine where the package
    cannot be installed); an fp16 copy reads the same to fp16 rounding."""
    import shutil

    from safetensors.torch import load_file, save_file

    from filmstrip.text.encoder import TextEncoder, TextEncoderMissing, weights_dir

    home = weights_dir()
    shutil.copy(home / "tokenizer.json", tmp_path / "tokenizer.json")
    save_file(
        {k: v.half() for k, v in load_file(str(home / "model.safetensors")).items()},
        str(tmp_path / "model.safetensors"),
    )
    monkeypatch.setenv("FILMSTRIP_TEXT_ENCODER", str(tmp_path))
    assert weights_dir() == tmp_path
    states, _ = TextEncoder().encode(["a red circle moves to the right"])
    reference, _ = TextEncoder(path=home).encode(["a red circle moves to the right"])
    torch.testing.assert_close(states, reference, rtol=0, atol=2e-2)
    monkeypatch.setenv("FILMSTRIP_TEXT_ENCODER", str(tmp_path / "nowhere"))
    with pytest.raises(TextEncoderMissing, match="no tokenizer.json or model.safetensors there"):
        weights_dir()
