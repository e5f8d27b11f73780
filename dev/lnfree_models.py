"""Loads lnfree's LN-free exports (doc/formats.md, "LN-free models out") into the interpretability libraries.

    import sys; sys.path.insert(0, "dev")
    from lnfree_models import load_transformer_lens, load_nnsight
    tl = load_transformer_lens("out/export/transformer_lens")   # folded, no normalization: hooks on a linear stream
    nn = load_nnsight("out/export/hf")                          # the stock GPT-2 modules, traced by NNSight
"""

import importlib.metadata
import json
import os

import torch


def load_transformer_lens(export_dir, tokenizer=None):
    """The folded export `export_dir` (transformer_lens/: config.json, model.safetensors) as a TransformerLens model
    with no normalization and an unembedding bias (`unembed.b_U`), in float32 on the CPU, in eval mode: a
    `TransformerBridge` on TransformerLens 4.x, a `HookedTransformer` on 3.x. Both take token ids and return logits
    (batch, pos, d_vocab) and have `run_with_cache` and the `blocks.{l}.hook_resid_post` hooks. `tokenizer` (e.g.
    AutoTokenizer.from_pretrained of the sibling hf/ export) is only needed to feed strings."""
    from safetensors.torch import load_file

    with open(os.path.join(export_dir, "config.json")) as f:
        config = json.load(f)
    config["dtype"] = getattr(torch, config.get("dtype", "float32"))  # JSON holds "float32"; both want a torch dtype
    config["device"] = "cpu"  # 3.x would move to a GPU when one is present, 4.x would not: the same for both
    state = load_file(os.path.join(export_dir, "model.safetensors"))
    if int(importlib.metadata.version("transformer-lens").split(".")[0]) >= 4:
        # 4.x: HookedTransformer is gone; its state dict converts to the native bridge's nn.Linear layout
        from transformer_lens import TransformerBridge, TransformerBridgeConfig
        from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint

        cfg = TransformerBridgeConfig.from_dict(config)
        model = TransformerBridge.boot_native(cfg, tokenizer=tokenizer)
        model.load_state_dict(convert_tl_checkpoint(state, cfg), strict=True)
    else:
        from transformer_lens import HookedTransformer, HookedTransformerConfig

        model = HookedTransformer(HookedTransformerConfig(**config), tokenizer=tokenizer)
        missing, unexpected = model.load_state_dict(state, strict=False)
        # the export holds every parameter; only TransformerLens' attention-mask buffers are not in it
        if unexpected or not all(k.endswith((".mask", ".IGNORE")) for k in missing):
            raise ValueError(f"{export_dir}: not a folded lnfree export: missing {missing}, unexpected {unexpected}")
    return model.eval()


def load_nnsight(hf_dir):
    """The hf/ export `hf_dir` as an NNSight model over stock transformers' GPT2LMHeadModel, weights loaded now, in
    float32 (its layer_norm_epsilon 1e12 overflows float16), with the export's tokenizer. Inside
    `with model.trace(tokens):` read `model.transformer.h[l].output` (the residual stream after block l),
    `model.transformer.ln_f.output` and `model.lm_head.output` (the logits). NNSight 0.8 deprecates `LanguageModel`
    for `TransformersModel` with the text-generation task, which is the same model without the warning."""
    from nnsight import TransformersModel

    return TransformersModel(hf_dir, task="text-generation", dtype=torch.float32, dispatch=True)
