"""Every text option of every family's config is either a choice (checked against its list) or declared a
path option (``ModelFamily.path_options``), which a server refuses in a train request: a new option that
names a file cannot reach ``POST /train`` unnoticed."""

from __future__ import annotations

import typing

import pytest

from models.families import FAMILIES

# Text options that are choices among fixed words, not paths (each family's config validates them).
CHOICES = {"uncertain", "gaze_target", "device", "decoding", "inputs", "backbone", "input_norm"}


def text_options(family) -> set[str]:
    out = set()
    for cls in family.sections.values():
        for name, hint in typing.get_type_hints(cls).items():
            if str in (typing.get_args(hint) or (hint,)):
                out.add(name)
    return out


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_text_options_are_choices_or_declared_paths(name):
    family = FAMILIES[name]
    undeclared = text_options(family) - CHOICES - set(family.path_options)
    assert not undeclared, (f"{name}: text option(s) {sorted(undeclared)}: add them to the family's path_options "
                            "(files on the machine) or to CHOICES here (a fixed list the config checks)")
    assert set(family.path_options) <= set(family.options()), f"{name}: path_options that are not options"


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_a_train_request_naming_a_path_option_is_refused(name):
    from monailabel_app.lib.trainers.family import train_options

    for option in FAMILIES[name].path_options:
        with pytest.raises(ValueError, match=f"^{option}: a path on the server is not accepted"):
            train_options(FAMILIES[name], {option: "/etc/passwd"})


def test_the_choices_are_checked_by_the_configs():
    """A value outside a choice option's words is refused by make_config (so it cannot smuggle a path)."""
    seen = set()
    for family in FAMILIES.values():
        for option in text_options(family) & CHOICES:
            seen.add(option)
            with pytest.raises(ValueError):
                family.make_config({option: "/etc/passwd"})
    assert seen == CHOICES
