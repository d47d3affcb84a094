"""environment.yml is generated from the requirements files and agrees with them."""

from __future__ import annotations

import subprocess
import sys

import yaml

from conftest import REPO


def pins(name: str) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in (REPO / name).read_text().splitlines())
    return [line for line in lines if line]


def test_environment_yml_has_the_pins_of_requirements_txt():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert env["name"] == "selfheal" and "python=3.11" in env["dependencies"]
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip_section == pins("requirements.txt")
    text = (REPO / "environment.yml").read_text()
    assert all(f"#   {pin}\n" in text for pin in pins("requirements-nodeps.txt"))
    assert "pip install --no-deps -r requirements-nodeps.txt" in text


def test_environment_yml_is_regenerated_not_hand_edited():
    check = [sys.executable, str(REPO / "scripts" / "make_environment.py"), "--check"]
    result = subprocess.run(check, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
