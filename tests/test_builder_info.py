from pathlib import Path

from app.builder_info import builder_info, parse_builder
from app.presets import builder_key

SEEDED = [
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
    "Phi3ForCausalLM",
    "GemmaForCausalLM",
    "Gemma2ForCausalLM",
    "SmolLM3ForCausalLM",
]


def test_the_installed_builder_is_read_from_its_source():
    info = builder_info()
    assert info.version.startswith(("0.14.", "0.18."))  # the two generations the studio is tested on
    for architecture in SEEDED:
        assert info.supports_architecture(architecture)
    assert not info.supports_architecture("BertForMaskedLM")
    assert {"cpu", "cuda", "dml", "webgpu", "trt-rtx"} <= set(info.execution_providers)
    assert info.cli_execution_providers["trt-rtx"] in {"NvTensorRtRtx", "trt-rtx"}
    for name in (
        "int4_block_size",
        "int4_is_symmetric",
        "int4_accuracy_level",
        "int4_algo_config",
        "exclude_embeds",
        "exclude_lm_head",
        "enable_cuda_graph",
        "shared_embeddings",
        "prune_lm_head",
    ):
        assert builder_key(name, info) in info.option_names()
    assert ("fp16", "cpu") not in info.valid_combinations
    assert {("fp32", "cpu"), ("fp16", "dml"), ("bf16", "trt-rtx"), ("int4", "webgpu")} <= info.valid_combinations
    assert builder_key("int4_is_symmetric", info) in info.boolean_options
    if info.version.startswith("0.18."):
        assert "int8" in info.precisions and ("int8", "cpu") in info.valid_combinations
        assert {"kv_cache_quant_scheme", "block_size", "accuracy_level"} <= set(info.option_names())
        assert {"Qwen3_5ForConditionalGeneration", "Gemma4ForConditionalGeneration"} <= set(info.architectures)


def test_a_newer_builder_changes_what_is_offered(tmp_path: Path):
    source = tmp_path / "builder.py"
    source.write_text(
        "import argparse\n"
        "def create_model(config):\n"
        '    if config.architectures[0] == "FutureForCausalLM":\n'
        "        pass\n"
        "def check_extra_options(kv_pairs):\n"
        '    bools = ["new_flag"]\n'
        "def get_args():\n"
        "    parser = argparse.ArgumentParser()\n"
        '    parser.add_argument("-p", "--precision", choices=["int8", "fp32"])\n'
        '    parser.add_argument("-e", "--execution_provider", choices=["cpu", "trt-rtx"])\n'
        '    parser.add_argument("--extra_options", help="""\\\n'
        "        Key value pairs:\n"
        "            new_flag = Turn on the new thing.\n"
        "                More help.\n"
        '        """)\n'
        '    print("Valid precision + execution provider combinations are: INT8 CPU, FP32 TRT-RTX")\n'
    )
    info = parse_builder(source, "9.9.9")
    assert info.architectures == ("FutureForCausalLM",)
    assert info.precisions == ("int8", "fp32")
    assert info.execution_providers == ("cpu", "trt-rtx")
    assert info.option_names() == ["new_flag"]
    assert info.options[0].help == "Turn on the new thing. More help."
    assert info.valid_combinations == {("int8", "cpu"), ("fp32", "trt-rtx")}
    assert info.boolean_options == {"new_flag"}
