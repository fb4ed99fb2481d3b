"""Server distributions fetched from Maven Central and kept in the download cache.

Maven does the fetching (checksums, mirrors, proxies are its business); the cache keeps
the unpacked result, so a second start needs no network at all.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

from scripts.stack.processes import StackError

logger = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.1"
REGISTRY_VERSION = "3.3.3"
REGISTRY_ARTIFACT = f"io.apicurio:apicurio-registry-app:{REGISTRY_VERSION}:tar.gz:all"

# Apicurio Registry 3.3 is compiled for Java 21; Kafka 4.1 runs on Java 17 or later.
REGISTRY_MIN_JAVA = 21
KAFKA_MIN_JAVA = 17

HERE = Path(__file__).parent


def kafka_libs(cache_dir: Path) -> Path:
    """The folder of Kafka's jars, fetched on first use."""
    libs = cache_dir / f"kafka-{KAFKA_VERSION}" / "libs"
    if (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        return libs

    logger.info("fetching Kafka %s and its dependencies with Maven", KAFKA_VERSION)
    partial = libs.with_name("libs.partial")
    shutil.rmtree(partial, ignore_errors=True)
    _maven(
        "-f",
        str(HERE / "kafka-pom.xml"),
        f"-Dkafka.version={KAFKA_VERSION}",
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={partial}",
    )
    partial.rename(libs)
    return libs


def registry_home(cache_dir: Path) -> Path:
    """The unpacked Apicurio Registry (a Quarkus fast-jar), fetched on first use."""
    home = cache_dir / f"apicurio-registry-{REGISTRY_VERSION}"
    if (home / "quarkus-run.jar").exists():
        return home

    logger.info("fetching Apicurio Registry %s with Maven", REGISTRY_VERSION)
    download = cache_dir / "downloads"
    _maven(
        "dependency:copy",
        f"-Dartifact={REGISTRY_ARTIFACT}",
        f"-DoutputDirectory={download}",
    )
    archive = download / f"apicurio-registry-app-{REGISTRY_VERSION}-all.tar.gz"
    partial = home.with_name(home.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with tarfile.open(archive) as tar:
        tar.extractall(partial, filter="data")
    partial.rename(home)
    archive.unlink()
    return home


def _maven(*args: str) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven (mvn) not found: run `make bootstrap`")
    result = subprocess.run(
        [mvn, "--batch-mode", "--quiet", *args], capture_output=True, text=True
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise StackError(f"Maven could not fetch a server:\n{tail}")


def java_home(minimum: int) -> Path:
    """A JDK of at least version ``minimum``.

    GATEKEEPER_JAVA_HOME wins when set; otherwise the oldest JDK that is new enough,
    among JAVA_HOME and /usr/lib/jvm, since servers are tested most on older ones.
    """
    chosen = os.environ.get("GATEKEEPER_JAVA_HOME")
    if chosen:
        version = _java_version(Path(chosen))
        if version is None or version < minimum:
            raise StackError(
                f"GATEKEEPER_JAVA_HOME={chosen} is not a JDK {minimum} or newer"
            )
        return Path(chosen)

    candidates = [
        os.environ.get("JAVA_HOME"),
        *map(str, Path("/usr/lib/jvm").glob("*")),
    ]
    found = {}
    for candidate in filter(None, candidates):
        version = _java_version(Path(candidate))
        if version is not None and version >= minimum:
            found.setdefault(version, Path(candidate))
    if not found:
        raise StackError(
            f"no Java {minimum} or newer found: install one and set "
            "GATEKEEPER_JAVA_HOME to its folder"
        )
    return found[min(found)]


def _java_version(home: Path) -> int | None:
    """The feature version written in a JDK's ``release`` file (17, 21, 25, ...)."""
    if not (home / "bin" / "java").exists():
        return None
    try:
        release = (home / "release").read_text()
    except OSError:
        return None
    match = re.search(r'JAVA_VERSION="(\d+)', release)
    return int(match.group(1)) if match else None
