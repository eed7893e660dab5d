import pytest

from app.builder_info import builder_info
from app.errors import PresetError
from app.presets import BY_FAMILY, PRESETS, builder_key, default_ep, get_preset, recommend, resolve, valid_eps


def spelled(options: dict) -> dict:
    """Options as the installed builder spells them (int4_* up to 0.15, generic names after)."""
    return {builder_key(key): value for key, value in options.items()}


def test_the_nine_presets_of_the_guide_have_stable_ids():
    assert list(PRESETS) == ["fp16", "fp32", "bf16", "int4", "int4-int8", "int4-bf16", "int4-fp16", "uint4", "custom"]


@pytest.mark.parametrize(
    ("preset", "ep", "precision", "options"),
    [
        ("fp16", "dml", "fp16", {}),
        ("fp32", "cpu", "fp32", {}),
        ("bf16", "cuda", "bf16", {}),
        # int4 leaves the accuracy level to the builder (4 on CPU/WebGPU, 0 on GPUs); int4-int8 forces 4.
        ("int4", "cpu", "int4", {"block_size": 32, "is_symmetric": True}),
        ("int4-int8", "dml", "int4", {"block_size": 32, "is_symmetric": True, "accuracy_level": 4}),
        ("int4-bf16", "cuda", "int4", {"block_size": 32, "is_symmetric": True, "accuracy_level": 3}),
        ("int4-fp16", "cuda", "int4", {"block_size": 32, "is_symmetric": True, "accuracy_level": 2}),
        ("uint4", "cpu", "int4", {"block_size": 32, "is_symmetric": False, "accuracy_level": 4}),
    ],
)
def test_presets_resolve_exactly_as_the_guide_says(preset, ep, precision, options):
    resolved = resolve(preset, ep)
    assert (resolved.precision, resolved.execution_provider, resolved.extra_options) == (
        precision,
        ep,
        spelled(options),
    )


def test_builder_flags_match_the_builder_command_line():
    flags = resolve("uint4", "cpu").builder_flags()
    assert flags == [
        "-p",
        "int4",
        "-e",
        "cpu",
        "--extra_options",
        f"{builder_key('block_size')}=32",
        f"{builder_key('is_symmetric')}=false",
        f"{builder_key('accuracy_level')}=4",
    ]
    assert resolve("fp16", "trt-rtx").builder_flags()[:4] == ["-p", "fp16", "-e", "NvTensorRtRtx"]


@pytest.mark.parametrize(
    ("preset", "ep", "names"),
    [
        ("fp16", "cpu", ["cuda", "fp32", "int4"]),
        ("bf16", "dml", ["cuda", "trt-rtx"]),
        ("int4", "trt-rtx", ["cpu", "fp16"]),
    ],
)
def test_a_refused_pair_names_what_to_pick_instead(preset, ep, names):
    with pytest.raises(PresetError) as caught:
        resolve(preset, ep)
    sentence = str(caught.value)
    assert sentence.count(".") == 1 and sentence.endswith(".")
    for name in names:
        assert name in sentence


def test_custom_takes_every_builder_option_typed_and_checked():
    resolved = resolve(
        "custom",
        "cpu",
        {
            "precision": "int4",
            "int4_block_size": "128",
            "int4_is_symmetric": "false",
            "int4_accuracy_level": "1",
            "int4_algo_config": "k_quant_mixed",
            "exclude_embeds": "true",
            "prune_lm_head": "1",
        },
    )
    assert resolved.precision == "int4"
    # The deprecated int4_* names are accepted on every generation and written as the installed builder reads them.
    assert resolved.extra_options == spelled(
        {
            "block_size": 128,
            "is_symmetric": False,
            "accuracy_level": 1,
            "algo_config": "k_quant_mixed",
            "exclude_embeds": True,
            "prune_lm_head": True,
        }
    )
    generic = resolve("custom", "cpu", {"precision": "int4", "block_size": "64", "is_symmetric": "true"})
    assert generic.extra_options == spelled({"block_size": 64, "is_symmetric": True})
    assert resolve("custom", "cuda", {"enable_cuda_graph": "true"}).extra_options == {"enable_cuda_graph": True}


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"int4_block_size": "48"}, "16, 32, 64, 128, 256"),
        ({"int4_is_symmetric": "maybe"}, "true or false"),
        ({"int4_algo_config": "gptq"}, "k_quant"),
        ({"not_an_option": "1"}, "not an option"),
        ({"hf_remote": "true"}, "not an option"),
        ({"precision": "fp32", "int4_block_size": "64"}, "only apply to int4"),
        ({"exclude_lm_head": "true", "prune_lm_head": "true"}, "cannot be used together"),
    ],
)
def test_bad_custom_options_are_refused_in_words(overrides, words):
    with pytest.raises(PresetError, match=words):
        resolve("custom", "cpu", {"precision": "int4", **overrides} if "precision" not in overrides else overrides)


def test_excluding_lm_head_from_int4_turns_off_shared_embeddings():
    # Builder 0.14.1 otherwise shares tied embeddings with an lm_head tensor it never made (FIELD-NOTES).
    options = resolve("int4", "cpu", {"int4_nodes_to_exclude": "/lm_head/MatMul"}).extra_options
    assert options[builder_key("nodes_to_exclude")] == ["/lm_head/MatMul"] and options["shared_embeddings"] is False


def test_builder_key_translates_both_ways_as_the_installed_builder_spells_it():
    legacy = "int4_block_size" in builder_info().option_names()
    assert builder_key("block_size") == ("int4_block_size" if legacy else "block_size")
    assert builder_key("int4_block_size") == ("int4_block_size" if legacy else "block_size")
    assert builder_key("exclude_embeds") == "exclude_embeds"
    assert builder_key("int4_unknown") == "int4_unknown"


def test_int8_and_kv_cache_quantization_follow_the_installed_builder():
    info = builder_info()
    if "int8" not in info.precisions:
        with pytest.raises(PresetError, match="precision 'int8' is not one"):
            resolve("custom", "cpu", {"precision": "int8"})
        return
    int8 = resolve(
        "custom", "cpu", {"precision": "int8", "int4_block_size": "64", "kv_cache_quant_scheme": "int8_per_tensor"}
    )
    assert int8.precision == "int8"
    assert int8.extra_options == {"block_size": 64, "kv_cache_quant_scheme": "int8_per_tensor"}
    with pytest.raises(PresetError, match="int8_per_channel"):
        resolve("custom", "cpu", {"precision": "int8", "kv_cache_quant_scheme": "int9"})
    with pytest.raises(PresetError, match="only apply to int4 or int8"):
        resolve("custom", "cpu", {"precision": "fp32", "block_size": "64"})


def test_default_provider_is_the_first_usable_one_the_preset_prefers():
    assert default_ep(get_preset("int4"), {"cpu"}) == "cpu"
    assert default_ep(get_preset("int4"), {"cpu", "dml"}) == "dml"
    assert default_ep(get_preset("fp16"), {"cpu"}) == "dml"
    assert default_ep(get_preset("fp32"), {"cpu", "cuda"}) == "cpu"
    assert valid_eps(get_preset("bf16")) == ["cuda", "trt-rtx"]


def test_recommendations_follow_the_guides_tables():
    assert BY_FAMILY["gemma2"] == ("bf16", "int4-bf16")
    assert recommend("qwen3", has_nvidia_gpu=True, modern_gpu=True)[0] == "fp16"
    assert recommend("gemma", has_nvidia_gpu=True, modern_gpu=True)[0] == "bf16"
    preset, _, reason = recommend("phi3", has_nvidia_gpu=True, modern_gpu=False)
    assert preset == "int4-bf16" and "RTX 30xx" in reason
    assert recommend("llama", has_nvidia_gpu=False, modern_gpu=False)[:2] == ("int4", "fp32")
    assert recommend("unknownfamily", has_nvidia_gpu=True, modern_gpu=False)[:2] == ("fp16", "int4-fp16")
