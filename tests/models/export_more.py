# ruff: noqa: E501, E702, I001
"""Further tiny standard models, exported as tests/models/export.py exports its own (same
helpers, same seeds): the "further models" the front ends were tried on.

    .venv-export/bin/python tests/models/export_more.py --out DIR [NAME ...]

Three of them are committed as fixtures (TorchScript ONNX + sample inputs + torch outputs):
``llama_tiny`` (RMSNorm, SiLU, rotary embeddings), ``regnet_y_tiny`` (grouped
convolutions) and ``whisper_enc_tiny`` (1-D convolutions).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import export as E
import torch
from export import Spec, _image_input, _randomize_bn, _seeded, _token_inputs, _wrap

OUT = Path(sys.argv[sys.argv.index("--out") + 1]) if "--out" in sys.argv else Path(".")


# ------------------------------------------------------------------ torchvision
def efficientnet_tiny():
    from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf

    setting, last = _efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.25)
    return EfficientNet(setting, dropout=0.2, last_channel=64, num_classes=10)


def convnext_tiny_narrow():
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    bs = [CNBlockConfig(16, 32, 1), CNBlockConfig(32, 64, 1), CNBlockConfig(64, None, 1)]
    return ConvNeXt(bs, layer_scale=0.5, num_classes=10)


def squeezenet():
    from torchvision.models import squeezenet1_1

    return squeezenet1_1(num_classes=10)


def shufflenet():
    from torchvision.models.shufflenetv2 import ShuffleNetV2

    return ShuffleNetV2([2, 2, 2], [8, 16, 32, 64, 128], num_classes=10)


def regnet_tiny():
    from functools import partial

    from torchvision.models.regnet import BlockParams, RegNet

    bp = BlockParams.from_init_params(
        depth=4, w_0=16, w_a=8.0, w_m=2.0, group_width=8, se_ratio=0.25
    )
    return RegNet(
        bp,
        num_classes=10,
        stem_width=16,
        norm_layer=partial(torch.nn.BatchNorm2d, eps=1e-05, momentum=0.1),
    )


def mnasnet():
    from torchvision.models import MNASNet

    return MNASNet(0.25, num_classes=10)


def densenet_tiny():
    from torchvision.models import DenseNet

    return DenseNet(
        growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16, bn_size=2, num_classes=10
    )


def swin_tiny():
    from torchvision.models import SwinTransformer

    return SwinTransformer(
        patch_size=[4, 4],
        embed_dim=16,
        depths=[2, 2],
        num_heads=[2, 4],
        window_size=[4, 4],
        stochastic_depth_prob=0.0,
        num_classes=10,
    )


def swin_v2_tiny():
    from torchvision.models.swin_transformer import (
        PatchMergingV2,
        SwinTransformer,
        SwinTransformerBlockV2,
    )

    return SwinTransformer(
        patch_size=[4, 4],
        embed_dim=16,
        depths=[2, 2],
        num_heads=[2, 4],
        window_size=[4, 4],
        stochastic_depth_prob=0.0,
        num_classes=10,
        block=SwinTransformerBlockV2,
        downsample_layer=PatchMergingV2,
    )


# ------------------------------------------------------------------ HF
def hf(cls_name, cfg_name, names, **kw):
    def build():
        import transformers

        cfg = getattr(transformers, cfg_name)(**kw)
        try:
            cfg._attn_implementation = "eager"
        except Exception:
            pass
        return _wrap(names)(getattr(transformers, cls_name)(cfg))

    return _seeded(build)


class _Feat(torch.nn.Module):
    def __init__(self, model, name):
        super().__init__()
        self.model = model
        self.name = name

    def forward(self, x):
        return tuple(self.model(**{self.name: x}, return_dict=False))


def hf_feat(cls_name, cfg_name, argname, **kw):
    def build():
        import transformers

        cfg = getattr(transformers, cfg_name)(**kw)
        try:
            cfg._attn_implementation = "eager"
        except Exception:
            pass
        cls = getattr(transformers, cls_name, None)
        if cls is None:
            from transformers.models.whisper.modeling_whisper import WhisperEncoder as cls
        return _Feat(cls(cfg), argname)

    return _seeded(build)


M2 = ["input_ids", "attention_mask"]
BERTISH = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=128,
    max_position_embeddings=40,
    vocab_size=500,
    pad_token_id=1,
)
LLAMA = dict(
    vocab_size=500,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
    use_cache=False,
    pad_token_id=0,
    bos_token_id=0,
    eos_token_id=0,
    tie_word_embeddings=False,
)

SPECS = [
    Spec(
        "efficientnet_tiny",
        _seeded(lambda: _randomize_bn(efficientnet_tiny())),
        lambda: _image_input((1, 3, 64, 64)),
        ["logits"],
        pt2=True,
    ),
    Spec(
        "convnext_narrow",
        _seeded(convnext_tiny_narrow),
        lambda: _image_input((1, 3, 64, 64)),
        ["logits"],
        pt2=True,
    ),
    Spec("squeezenet1_1", _seeded(squeezenet), lambda: _image_input((1, 3, 64, 64)), ["logits"]),
    Spec(
        "shufflenet_tiny",
        _seeded(lambda: _randomize_bn(shufflenet())),
        lambda: _image_input((1, 3, 64, 64)),
        ["logits"],
    ),
    Spec(
        "regnet_y_tiny",
        _seeded(lambda: _randomize_bn(regnet_tiny())),
        lambda: _image_input((1, 3, 64, 64)),
        ["logits"],
    ),
    Spec(
        "mnasnet_tiny",
        _seeded(lambda: _randomize_bn(mnasnet())),
        lambda: _image_input((1, 3, 64, 64)),
        ["logits"],
    ),
    Spec(
        "densenet_tiny",
        _seeded(lambda: _randomize_bn(densenet_tiny())),
        lambda: _image_input((1, 3, 64, 64)),
        ["logits"],
    ),
    Spec(
        "swin_tiny", _seeded(swin_tiny), lambda: _image_input((1, 3, 32, 32)), ["logits"], pt2=True
    ),
    Spec("swin_v2_tiny", _seeded(swin_v2_tiny), lambda: _image_input((1, 3, 32, 32)), ["logits"]),
    Spec(
        "distilbert_tiny",
        hf(
            "DistilBertModel",
            "DistilBertConfig",
            M2,
            dim=64,
            n_layers=2,
            n_heads=2,
            hidden_dim=128,
            vocab_size=500,
            max_position_embeddings=32,
            pad_token_id=0,
        ),
        lambda: _token_inputs(M2, 16, 500, pad=4),
        ["last_hidden_state"],
        pt2=True,
    ),
    Spec(
        "roberta_tiny",
        hf("RobertaModel", "RobertaConfig", M2, **BERTISH),
        lambda: _token_inputs(M2, 16, 500, pad=4),
        ["last_hidden_state", "pooler_output"],
    ),
    Spec(
        "albert_tiny",
        hf(
            "AlbertModel",
            "AlbertConfig",
            M2,
            embedding_size=32,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=128,
            max_position_embeddings=32,
            vocab_size=500,
            pad_token_id=0,
        ),
        lambda: _token_inputs(M2, 16, 500, pad=4),
        ["last_hidden_state", "pooler_output"],
    ),
    Spec(
        "t5_encoder_tiny",
        hf(
            "T5EncoderModel",
            "T5Config",
            M2,
            vocab_size=500,
            d_model=64,
            d_kv=16,
            d_ff=128,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            relative_attention_max_distance=16,
            use_cache=False,
            feed_forward_proj="gated-gelu",
        ),
        lambda: _token_inputs(M2, 16, 500, pad=4),
        ["last_hidden_state"],
    ),
    Spec(
        "llama_tiny",
        hf("LlamaModel", "LlamaConfig", M2, **LLAMA),
        lambda: _token_inputs(M2, 16, 500),
        ["last_hidden_state"],
        pt2=True,
    ),
    Spec(
        "qwen2_tiny",
        hf("Qwen2Model", "Qwen2Config", M2, **LLAMA),
        lambda: _token_inputs(M2, 16, 500),
        ["last_hidden_state"],
    ),
    Spec(
        "mistral_tiny",
        hf("MistralModel", "MistralConfig", M2, sliding_window=8, **LLAMA),
        lambda: _token_inputs(M2, 16, 500),
        ["last_hidden_state"],
    ),
    Spec(
        "clip_text_tiny",
        hf(
            "CLIPTextModel",
            "CLIPTextConfig",
            M2,
            vocab_size=500,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=32,
            projection_dim=32,
            eos_token_id=2,
        ),
        lambda: _token_inputs(M2, 16, 500),
        ["last_hidden_state", "pooler_output"],
    ),
    Spec(
        "clip_vision_tiny",
        hf_feat(
            "CLIPVisionModel",
            "CLIPVisionConfig",
            "pixel_values",
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        lambda: _image_input((1, 3, 32, 32)),
        ["last_hidden_state", "pooler_output"],
    ),
    Spec(
        "whisper_enc_tiny",
        hf_feat(
            "WhisperEncoder",
            "WhisperConfig",
            "input_features",
            d_model=64,
            encoder_layers=2,
            encoder_attention_heads=2,
            encoder_ffn_dim=128,
            num_mel_bins=16,
            max_source_positions=16,
            vocab_size=500,
        ),
        lambda: {"input": torch.randn(1, 16, 32, generator=torch.Generator().manual_seed(1))},
        ["last_hidden_state"],
    ),
    Spec(
        "wav2vec2_tiny",
        hf_feat(
            "Wav2Vec2Model",
            "Wav2Vec2Config",
            "input_values",
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=128,
            conv_dim=(16, 16),
            conv_stride=(5, 2),
            conv_kernel=(10, 3),
            num_conv_pos_embeddings=8,
            num_conv_pos_embedding_groups=4,
            feat_extract_norm="group",
            do_stable_layer_norm=False,
        ),
        lambda: {"input": torch.randn(1, 400, generator=torch.Generator().manual_seed(1))},
        ["last_hidden_state", "extract_features"],
    ),
]

if __name__ == "__main__":
    torch.set_num_threads(1)
    args = sys.argv[1:]
    if "--out" in args:
        i = args.index("--out")
        del args[i : i + 2]
    only = args
    for s in SPECS:
        if only and s.name not in only:
            continue
        try:
            r = E.export_one(s, OUT, True)
        except Exception as e:
            import traceback

            traceback.print_exc()
            print("BUILD FAILED", s.name, type(e).__name__, str(e)[:300], flush=True)
