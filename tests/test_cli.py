"""The command line: exit codes, output formats, error handling in one place."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import REPO, RegistryBuilder


def test_validate_shipped_registry(run_cli) -> None:
    code, out, err = run_cli("validate", str(REPO / "registry"))
    assert code == 0 and out == "" and "ok: 5 card(s)" in err


def test_validate_defaults_to_nlmr_registry(run_cli, registry: RegistryBuilder) -> None:
    registry.card(license="Bogus-1.0")
    code, out, _ = run_cli("validate", env={"NLMR_REGISTRY": str(registry.root)})
    assert code == 1 and "license: unknown SPDX license id 'Bogus-1.0'" in out


def test_validate_broken_card_one_line_per_problem(run_cli, registry: RegistryBuilder) -> None:
    path = registry.card(license="Bogus-1.0", languages=["nb", "qq-zz"], summary="x" * 400)
    code, out, err = run_cli("validate", str(path))
    lines = out.splitlines()
    assert code == 1 and len(lines) == 3
    assert all(line.startswith(f"{path}:") for line in lines)
    assert "3 error(s)" in err


def test_validate_json(run_cli, registry: RegistryBuilder) -> None:
    registry.card(languages=["nob"])
    code, out, _ = run_cli("validate", "--format", "json", str(registry.root))
    data = json.loads(out)
    assert code == 0 and data["ok"] and data["warnings"] == 1
    assert (
        data["problems"][0]["rule"] == "language" and data["problems"][0]["field"] == "languages[0]"
    )
    code, out, _ = run_cli("validate", "--format", "json", "--strict", str(registry.root))
    assert code == 1 and json.loads(out)["ok"] is False


def test_usage_error_exits_2(run_cli) -> None:
    code, _, err = run_cli("validate", "--format", "xml")
    assert code == 2 and "Invalid value" in err
    code, _, err = run_cli("no-such-command")
    assert code == 2


def test_ls(run_cli) -> None:
    code, out, err = run_cli("ls", "--registry", str(REPO / "registry"))
    assert code == 0 and "ltg/norbert3-base" in out and "catalogued" in out
    assert "5 entries (0 stored)" in err
    code, out, _ = run_cli("ls", "ltg/*", "--json", "--registry", str(REPO / "registry"))
    ids = [e["id"] for e in json.loads(out)["entries"]]
    assert code == 0 and ids == ["ltg/norbert3-base", "ltg/nort5-base"]
    code, out, _ = run_cli(
        "ls", "--type", "dataset", "--json", "--registry", str(REPO / "registry")
    )
    assert [e["id"] for e in json.loads(out)["entries"]] == ["NbAiLab/NCC"]


def test_ls_reports_invalid_cards_and_missing_registry(
    run_cli, registry: RegistryBuilder, tmp_path: Path
) -> None:
    registry.card()
    registry.card(id="acme/broken", license="Nope")
    code, out, err = run_cli("ls", "--registry", str(registry.root))
    assert code == 1 and "acme/tiny-bert" in out and "acme/broken" in err
    code, out, err = run_cli("ls", "--registry", str(tmp_path / "nothing"))
    assert code == 1 and err.startswith("nlmr: error: ") and "not a registry" in err
    assert "hint: pass --registry DIR or set NLMR_REGISTRY" in err


def test_card_export_and_import(run_cli, registry: RegistryBuilder, tmp_path: Path) -> None:
    registry.card()
    readme = tmp_path / "README.md"
    code, _, _ = run_cli(
        "card", "export", "acme/tiny-bert", "--registry", str(registry.root), "-o", str(readme)
    )
    assert code == 0 and readme.read_text().startswith("---\n")
    code, out, _ = run_cli(
        "card",
        "import",
        str(readme),
        "--id",
        "acme/copy",
        "--registry",
        str(registry.root),
        "--dry-run",
    )
    assert code == 0 and yaml.safe_load(out)["id"] == "acme/copy"
    code, _, err = run_cli(
        "card", "import", str(readme), "--id", "acme/copy", "--registry", str(registry.root)
    )
    assert code == 0 and "wrote" in err
    target = registry.root / "models/acme/copy/card.yaml"
    assert yaml.safe_load(target.read_text())["title"] == "Tiny BERT"
    code, _, err = run_cli(
        "card", "import", str(readme), "--id", "acme/copy", "--registry", str(registry.root)
    )
    assert code == 1 and "already exists" in err and "--force" in err
    code, _, err = run_cli(
        "card", "import", str(readme), "--id", "../../etc", "--registry", str(registry.root)
    )
    assert code == 2 and not (registry.root.parent.parent / "etc").exists()


def test_card_import_foreign_readme_lists_what_is_missing(
    run_cli, registry: RegistryBuilder, tmp_path: Path
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("---\nlanguage: [nb]\nlicense: mit\n---\n# X\n\nAn X.\n")
    code, _, err = run_cli(
        "card", "import", str(readme), "--id", "org/x", "--registry", str(registry.root)
    )
    assert code == 0 and "missing required field 'creators'" in err
    assert "missing required field 'maintainers'" in err


def test_export_unknown_entry(run_cli, registry: RegistryBuilder) -> None:
    code, _, err = run_cli("card", "export", "acme/nope", "--registry", str(registry.root))
    assert code == 1 and "acme/nope: no card" in err and "Traceback" not in err


def test_demo(run_cli, tmp_path: Path) -> None:
    code, out, _ = run_cli("demo", "--workdir", str(tmp_path / "demo"))
    assert code == 0 and "demo succeeded" in out and "DIFFERS" not in out
    assert "added nlmr-demo/tiny-bert@main" in out and "check-remote --deep: ok" in out
    assert (tmp_path / "demo/registry/models/nlmr-demo/tiny-bert/card.yaml").is_file()


def _python(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )


def test_python_dash_m_and_debug_traceback(tmp_path: Path) -> None:
    result = _python("-m", "nlmr", "--version")
    assert result.returncode == 0 and "nlmr, version" in result.stdout
    quiet = _python("-m", "nlmr", "ls", "--registry", str(tmp_path))
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr
    loud = _python("-m", "nlmr", "ls", "--registry", str(tmp_path), env={"NLMR_DEBUG": "1"})
    assert loud.returncode == 1 and "Traceback" in loud.stderr
    assert "RegistryNotFoundError" in loud.stderr


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from nlmr.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = {'jsonschema', 'langcodes', 'license_expression', 'huggingface_hub', 'yaml',"
        " 'torch', 'transformers', 'dvc', 'referencing'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = _python("-c", code)
    assert result.returncode == 0
    assert result.stdout.strip().splitlines()[-1] == "[]"
