"""pillar.example documents every default, with the default's value."""

import salt.utils.yaml

from tests.conftest import REPO, formula_defaults


def _flatten(data, prefix=""):
    items = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            items.update(_flatten(value, path + ":"))
        else:
            items[path] = value
    return items


def test_pillar_example_documents_every_default():
    example = salt.utils.yaml.safe_load((REPO / "pillar.example").read_text())["litellm"]
    defaults = _flatten(formula_defaults())
    documented = _flatten(example)
    assert set(defaults) == set(documented)
    differing = {k: (defaults[k], documented[k]) for k in defaults if defaults[k] != documented[k]}
    assert differing == {}


def test_every_default_passes_the_validator_except_the_required_keys():
    from tests.conftest import load_salt_module

    errors = load_salt_module("modules", "litellm_config").check_settings(formula_defaults())
    assert [e.split(":")[1] for e in errors] == ["backends", "models", "master_key"]
