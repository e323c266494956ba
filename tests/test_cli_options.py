"""--input-size, shared by every dmlcsr command: one number is a square, H,W (or HxW) a
rectangle, and anything else is click's one-line usage error naming the option."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from dmlcsr.cli_options import MIN_INPUT_SIDE, input_size_option


@click.command()
@input_size_option()
def show(input_size: tuple[int, int]) -> None:
    click.echo(f"{input_size[0]} {input_size[1]}")


@pytest.mark.parametrize("given,parsed", [(None, "473 473"), ("225", "225 225"), ("97,129", "97 129"),
                                          ("97x129", "97 129"), (" 97 , 129 ", "97 129")])
def test_sizes_parse_to_height_and_width(given, parsed):
    result = CliRunner().invoke(show, [] if given is None else ["--input-size", given])
    assert result.exit_code == 0 and result.output.strip() == parsed, result.output


@pytest.mark.parametrize("given", ["abc", "473,abc", "1,2,3", "", "473,0", str(MIN_INPUT_SIDE - 1), "-5"])
def test_bad_sizes_are_one_usage_error(given):
    result = CliRunner().invoke(show, ["--input-size", given])
    assert result.exit_code == 2 and result.exception is not None and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "--input-size" in errors[0] and "give H,W" in errors[0], result.output


def test_the_default_shows_as_typed():
    assert "[default: 473,473]" in " ".join(CliRunner().invoke(show, ["--help"]).output.split())
