"""Record all-MiniLM-L6-v2 per-token states computed by `transformers`, the reference that
tests/test_text_encoder.py holds filmstrip's own MiniLM to. Needs `pip install transformers`
(not a filmstrip dependency); rerun only if the prompts below change.

    HF_HUB_OFFLINE=1 python scripts/make_minilm_reference.py
"""

from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoModel, AutoTokenizer

from filmstrip.text.encoder import weights_dir

PROMPTS = ["a red circle moves to the right", "", "Two GREEN triangles, bouncing off the walls!"]


def main() -> None:
    path = str(weights_dir())
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    tensors = {}
    for i, prompt in enumerate(PROMPTS):
        batch = tokenizer([prompt], return_tensors="pt")
        with torch.no_grad():
            tensors[f"states_{i}"] = model(**batch).last_hidden_state[0].contiguous()
        tensors[f"ids_{i}"] = batch["input_ids"][0].contiguous()
    out = Path(__file__).resolve().parent.parent / "tests" / "data" / "minilm_reference.safetensors"
    save_file(tensors, str(out), metadata={f"prompt_{i}": p for i, p in enumerate(PROMPTS)})
    print(out)


if __name__ == "__main__":
    main()
