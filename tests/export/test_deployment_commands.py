"""Every ``python tools/...`` command of docs/DEPLOYMENT.md's shell blocks is accepted by its tool as written:
the options exist, take the values shown, and the configs named are in configs/ (the commands themselves
run in tests/export/test_export.py, test_quantization.py and test_benchmark.py on the toy models; the
results tables come from the benchmark run the doc names)."""
import os
import re
import shlex

import pytest

from tests.common import REPO_ROOT, load_tool

TOOLS_WITH_PARSERS = ("export_model", "benchmark_inference", "train_net")


def parse(tool_name, args):
    if tool_name == "train_net":  # Detectron2's parser, as tools/train_net.py uses it
        from detectron2.engine import default_argument_parser

        return default_argument_parser().parse_args(args)
    return load_tool(tool_name).parse_args(args)


def doc_commands():
    with open(os.path.join(REPO_ROOT, "docs", "DEPLOYMENT.md")) as f:
        text = f.read()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for command in block.replace("\\\n", " ").splitlines():
            words = shlex.split(command, comments=True)
            while words and "=" in words[0]:  # VARIABLE=value before the command
                words.pop(0)
            if len(words) >= 2 and words[0] == "python" and words[1].startswith("tools/"):
                commands.append(words[1:])
    return commands


def test_the_doc_has_the_commands():
    tools = {os.path.basename(c[0])[:-3] for c in doc_commands()}
    assert {"export_model", "benchmark_inference"} <= tools <= set(TOOLS_WITH_PARSERS), tools


@pytest.mark.parametrize("command", doc_commands(), ids=lambda c: " ".join(c)[:80])
def test_command_is_accepted_as_written(command, tmp_path, monkeypatch):
    tool_name = os.path.basename(command[0])[:-3]
    if tool_name not in TOOLS_WITH_PARSERS:
        pytest.fail(f"docs/DEPLOYMENT.md runs tools/{tool_name}.py, which this test does not check")
    monkeypatch.chdir(tmp_path)
    os.symlink(os.path.join(REPO_ROOT, "configs"), "configs")
    for word in command[1:]:
        if word.startswith("configs/"):
            assert os.path.isfile(word), f"docs/DEPLOYMENT.md names {word}, which is not in configs/"
        elif word.startswith("output/") and word.endswith(".pth"):  # a user's trained weights
            os.makedirs(os.path.dirname(word), exist_ok=True)
            open(word, "w").close()
    parse(tool_name, command[1:])
