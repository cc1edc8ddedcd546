"""The image: multi-stage, compilers only in the builder, non-root, a python health check,
and a build context (.dockerignore) that carries exactly what the Dockerfile copies.

No Docker engine runs here, so the image is not built; hadolint lints the file when it is
installed, and the wheel-only install the final stage does is what ``pip install
--no-index --find-links`` does anywhere.
"""

from __future__ import annotations

import fnmatch
import re

from tests.deploy.conftest import DEPLOY, REPO, run, tool

DOCKERFILE = DEPLOY / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions():
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def test_two_stages_final_on_python_slim() -> None:
    """A builder stage and a final stage, both on the python 3.11 slim image."""
    builder, final = stages()
    args = dict(a.split("=", 1) for k, a in instructions() if k == "ARG" and "=" in a)
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    assert builder[0][1] == "${PYTHON_IMAGE} AS builder"
    assert final[0][1] == "${PYTHON_IMAGE}"


def test_compilers_only_in_the_builder() -> None:
    """build-essential is installed in the builder; the final stage installs no packages."""
    builder, final = stages()
    assert any("build-essential" in a for k, a in builder if k == "RUN")
    for k, a in final:
        if k == "RUN":
            assert not re.search(r"apt-get|apk |gcc|build-essential", a), a
    (install,) = [a for k, a in final if k == "RUN" and "pip install" in a]
    assert "--no-index" in install and "from=builder" in install


def test_final_stage_runs_as_a_non_root_user() -> None:
    """USER is a numeric non-root uid (Kubernetes runAsNonRoot can verify it)."""
    _, final = stages()
    (user,) = [a for k, a in final if k == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000


def test_healthcheck_uses_python_urllib_on_healthz() -> None:
    """HEALTHCHECK needs no curl: python's urllib against the health port and path."""
    _, final = stages()
    (check,) = [a for k, a in final if k == "HEALTHCHECK"]
    assert "urllib.request.urlopen" in check and "SECMON_HEALTH_PORT" in check
    env = " ".join(a for k, a in final if k == "ENV")
    assert "SECMON_HEALTH_PORT=9464" in env and "SECMON_HEALTH_PATH=/healthz" in env
    assert not any("curl" in a for _, a in instructions())


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore semantics for the patterns used here (last match wins)."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        if fnmatch.fnmatch(path, pat) or path.startswith(pat + "/") or fnmatch.fnmatch(path, pat.replace("**/", "")):
            ignored = not negate
    return ignored


def dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def test_build_context_holds_what_copy_needs_and_nothing_else() -> None:
    """Every COPY source exists and survives .dockerignore; .venv, .git and tests do not."""
    patterns = dockerignore()
    sources = []
    for k, a in instructions():
        if k == "COPY" and "--from" not in a:
            sources += a.split()[:-1]
    assert sources
    for src in sources:
        assert (REPO / src).exists(), src
        assert not _ignored(src.rstrip("/"), patterns), src
    for excluded in (".venv", ".git", "tests/deploy/test_dockerfile.py", "bench/run.py", "secmon.db",
                     "secmon/__pycache__/x.pyc"):  # fmt: skip
        assert _ignored(excluded, patterns), excluded


def test_shipped_files_in_the_image_exist() -> None:
    """The topic-init script and the default config the image carries are in the repo."""
    assert (REPO / "deploy/kafka/create_topics.py").is_file()
    assert (REPO / "deploy/config/secmon.yaml").is_file()


def test_hadolint_accepts_the_dockerfile() -> None:
    """hadolint finds nothing (each ignored rule is annotated with its reason)."""
    result = run([tool("hadolint"), "--no-color", str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr
