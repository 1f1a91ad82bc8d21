import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]


def shared_dir() -> pathlib.Path:
    env = os.environ.get("ONESHOT_SHARED")
    return pathlib.Path(env) if env else ROOT.parent / "shared"


@pytest.fixture(scope="session")
def dev_cases_path() -> pathlib.Path:
    path = shared_dir() / "data" / "verifier" / "dev_cases.jsonl"
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"dev cases missing at {path} (CI=true): set ONESHOT_SHARED")
        print(f"skipped: dev cases ({path}), set ONESHOT_SHARED")
        pytest.skip(f"skipped: dev cases ({path}), set ONESHOT_SHARED")
    return path
