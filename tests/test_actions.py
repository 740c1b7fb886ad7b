"""The action table (sleuth.agent.actions): every action defined once, every part derived."""

from __future__ import annotations

import pytest

from sleuth.agent import prompts
from sleuth.agent.actions import ACTION_SPECS, ACTIONS, SPECS
from sleuth.agent.config import ACTIONS as CONFIG_ACTIONS
from sleuth.agent.executors import EXECUTORS
from sleuth.agent.grammar import CHAR_CAPS, WORD_CAPS
from sleuth.agent.parsing import TAG


def test_every_action_has_one_executor_and_no_executor_lacks_an_action():
    assert list(EXECUTORS) == list(ACTIONS)


def test_the_other_parts_read_the_table():
    assert CONFIG_ACTIONS is ACTIONS
    for spec in ACTION_SPECS:
        assert prompts.TAG_HELP[spec.name] == spec.prompt
        assert prompts.TOOL_HELP[spec.name] == (spec.description, spec.parameters)
        assert WORD_CAPS[spec.name] == spec.words and CHAR_CAPS[spec.name] == spec.chars
        assert TAG.fullmatch(f"<{spec.name.upper()}>")


@pytest.mark.parametrize("name", ACTIONS)
def test_tool_arguments_say_the_argument_and_read_back(name):
    spec = SPECS[name]
    argument = "yes: it is all there" if spec.heads else "Mira Castell"
    arguments = spec.arguments_for(argument)
    assert list(arguments) == list(spec.parameters)
    assert spec.argument_from(arguments) == argument
    assert spec.tool()["function"]["parameters"]["required"] == list(spec.parameters)
