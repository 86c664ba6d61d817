"""A packaged sentence-transformers model exported to ONNX for onnxruntime: one graph from
tokens to normalised sentence embeddings, attention fused where onnxruntime's optimizer knows
the model's, and an int8 copy (core.rag.embeddings picks which one embeds). Run by
`models prepare` (core.prepare) after the model is unpacked; nothing is downloaded."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core import files
from core.registry import STAMP_NAME

ONNX_INT8 = "model-int8.onnx"
# 2: attention written out by the export and fused by onnxruntime's transformer optimizer. An
# export of an older version is made again by the next `models prepare`.
ONNX_EXPORT_VERSION = 2


def quantize_int8(model: Path, target: Path) -> None:
    """Weights in int8 per output channel, activations quantized on the fly: it embeds
    1.5-1.9x faster than float32 (torch or ONNX), and its vectors keep a mean cosine of 0.99 to
    float32's (0.948 with one scale per tensor, the default); see bench/README.md for what it
    does to retrieval."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The fused operators come from onnxruntime's own domain, whose outputs ONNX's shape
    # inference cannot type: they are float.
    quantize_dynamic(str(model), str(target), per_channel=True, weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": TensorProto.FLOAT})


def _vectors(model: Path, feeds: dict) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def fuse_attention(model: Path, target: Path, heads: int, hidden: int, feeds: dict) -> bool:
    """The graph with each layer's attention, layer norms and GELU as single fused operators
    (onnxruntime's transformer optimizer), written to `target` when the optimizer found the
    attention and the fused graph gives the same vectors; whether it did. MiniLM embeds
    1.1-1.35x faster fused, in float32 and in int8 (bench/README.md)."""
    from onnxruntime.transformers.optimizer import optimize_model

    fused = optimize_model(str(model), model_type="bert", num_heads=heads, hidden_size=hidden,
                           opt_level=1)
    if not fused.get_fused_operator_statistics().get("Attention"):
        return False  # a model whose attention the optimizer does not know (MPNet's)
    fused.save_model_to_file(str(target))
    same = np.abs(_vectors(target, feeds) - _vectors(model, feeds)).max() < 1e-4
    if not same:
        target.unlink()
    return bool(same)


def export_onnx(source: Path, target: Path,
                report: Callable[[float, str], None] = lambda fraction, message: None) -> None:
    """A sentence-transformers model (BERT-like, mean pooling) as one ONNX graph that returns
    normalised sentence embeddings, with its tokenizer beside it. Exported in float32 by the
    TorchScript exporter, attention fused where onnxruntime knows the model's: the vectors
    agree with sentence-transformers' (a cosine over 0.999, tests/test_retrieval.py)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    report(0.0, "exporting the embedding model to ONNX")
    tokenizer = AutoTokenizer.from_pretrained(source)
    # Attention written out as matrix products and a softmax (not the SDPA call), which is the
    # pattern onnxruntime's optimizer fuses.
    model = AutoModel.from_pretrained(source, dtype=torch.float32,
                                      attn_implementation="eager").eval()

    # BERT-like models take token_type_ids; MPNet's tokenizer makes none and its model takes
    # none: the graph takes what the tokenizer gives.
    inputs = [k for k in ("input_ids", "attention_mask", "token_type_ids")
              if k in tokenizer.model_input_names]

    class Pooled(torch.nn.Module):
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, *tensors):
            named = dict(zip(inputs, tensors, strict=True))
            hidden = self.encoder(**named).last_hidden_state
            mask = named["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    sample = tokenizer(["an example", "a slightly longer example sentence"], padding=True,
                       return_tensors="pt")
    feeds = {k: sample[k].numpy() for k in inputs}
    axes = {k: {0: "batch", 1: "tokens"} for k in inputs} | {"embedding": {0: "batch"}}
    config = files.read_json(Path(source) / "sentence_bert_config.json", {})
    with files.replacing_folder(target) as staging:
        plain = staging / "plain.onnx"
        torch.onnx.export(Pooled(model), tuple(sample[k] for k in inputs), str(plain),
                          input_names=inputs, output_names=["embedding"], dynamic_axes=axes,
                          opset_version=17, dynamo=False)
        report(0.5, "fusing attention")
        fused = fuse_attention(plain, staging / "model.onnx", model.config.num_attention_heads,
                               model.config.hidden_size, feeds)
        if fused:
            plain.unlink()
        else:
            plain.rename(staging / "model.onnx")
        tokenizer.backend_tokenizer.save(str(staging / "tokenizer.json"))
        report(0.8, "quantizing a copy to int8")
        quantize_int8(staging / "model.onnx", staging / ONNX_INT8)
        files.write_json(staging / STAMP_NAME, {
            "source": str(source), "max_length": int(config.get("max_seq_length", 256)),
            "int8": ONNX_INT8, "version": ONNX_EXPORT_VERSION, "fused": fused,
            "prepared_at": time.time()}, indent=2)
    report(1.0, str(target))
