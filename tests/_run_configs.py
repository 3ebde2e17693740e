"""Run configs written by tests, as YAML files a command line reads."""

import yaml


def write(tmp_path, name: str, config: dict):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return str(path)
