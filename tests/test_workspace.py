"""core.workspace: the ``--workspace`` flag beats ``DEEPFAKE_STUDIO_HOME``, which beats the
platform's user data folder; sub-folders appear on first use."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.workspace import ENV_VAR, Workspace


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv(ENV_VAR, raising=False)
    return monkeypatch


def test_flag_beats_environment(no_env, tmp_path: Path):
    no_env.setenv(ENV_VAR, str(tmp_path / "from-env"))
    assert Workspace.resolve(tmp_path / "from-flag").root == tmp_path / "from-flag"


def test_environment_beats_platform_default(no_env, tmp_path: Path):
    no_env.setenv(ENV_VAR, str(tmp_path / "from-env"))
    assert Workspace.resolve().root == tmp_path / "from-env"
    assert Workspace.resolve(None).root == tmp_path / "from-env"
    assert Workspace.resolve("").root == tmp_path / "from-env"  # an empty flag is no flag


def test_platform_default_follows_xdg_on_linux(no_env, tmp_path: Path):
    import sys

    from platformdirs import user_data_dir

    no_env.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    root = Workspace.resolve().root
    assert root == Path(user_data_dir("deepfake-studio", appauthor=False))
    if sys.platform.startswith("linux"):
        assert root == tmp_path / "xdg" / "deepfake-studio"


def test_empty_environment_variable_is_ignored(no_env, tmp_path: Path):
    no_env.setenv(ENV_VAR, "")
    no_env.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Workspace.resolve().root.name == "deepfake-studio"


def test_paths_are_expanded_and_absolute(no_env, tmp_path: Path):
    no_env.setenv("HOME", str(tmp_path))
    assert Workspace.resolve("~/studio").root == tmp_path / "studio"
    no_env.chdir(tmp_path)
    assert Workspace.resolve("rel/ws").root == tmp_path / "rel" / "ws"


def test_sub_folders_are_created_on_first_use(tmp_path: Path):
    workspace = Workspace.resolve(tmp_path / "ws")
    assert not workspace.root.exists()  # resolving creates nothing
    for name in ("runs", "indexes", "bundles", "thumbnails", "jobs"):
        folder = getattr(workspace, name)
        assert folder == workspace.root / name and folder.is_dir()
