"""The README stays true about configuration: every setting's variable is documented."""

from shared.platform.settings import PROJECT_ROOT, Settings


def test_every_environment_variable_is_in_the_readme():
    readme = (PROJECT_ROOT / "README.md").read_text()
    for name, field in Settings.model_fields.items():
        names = list(field.validation_alias.choices) if field.validation_alias else [f"VISIONFN_{name.upper()}"]
        assert f"`{names[0]}`" in readme, f"{names[0]} is missing from the README's table"
